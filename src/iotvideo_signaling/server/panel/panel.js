// The panel simulator: drives the daemon's WebSocket transport as the IoT Video standard panel
// drives a camera (Tencent's demo mini-program, xp2p-demo-ipc, is the model):
// - every user_define command is action=user_define&channel=0&cmd=<JSON> with message_id a counter;
// - a PTZ press goes out once on pointer down; its release (ptz_release_pre) 500 ms after pointer
//   up, cancelled by a new press within those 500 ms; sent at once on pointer cancel or when the
//   page is hidden;
// - a reply is cut at its first NUL and parsed as JSON; a command without an answer after 7.5 s
//   is shown as a timeout.
// A reply is paired with its request by message_id; one without (an inner_define reply, an error
// about an unreadable command) with the oldest request waiting, since the daemon answers in order.
// Messages {"event": ...} are device events.
"use strict";

(() => {
  const TIMEOUT_MS = 7500;
  const RELEASE_MS = 500;
  const RETRY_MIN_MS = 500;
  const RETRY_MAX_MS = 5000;
  const LOG_MAX = 300;
  const PREFIX = "action=user_define&channel=0&cmd=";

  const $ = (id) => document.getElementById(id);
  const state = {
    ws: null,
    ready: false, // open, and authenticated when tokens are required
    auth: false, // the daemon asks for a token
    token: sessionStorage.getItem("iotvideo-signaling-token") || "",
    messageId: 0,
    pending: [], // requests in the order they were sent
    retryMs: RETRY_MIN_MS,
    connectedOnce: false,
    refusal: "", // why the daemon refused the last token, shown until another is sent
    ptz: { pressed: null, releaseTimer: null },
  };

  // -- the link ----------------------------------------------------------------------------------

  function setLink(text, cls) {
    const link = $("link");
    link.textContent = text;
    link.className = cls || "";
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    let ws;
    try {
      ws = new WebSocket(scheme + location.host + "/");
    } catch (error) {
      linkLost(String(error));
      return;
    }
    state.ws = ws;
    ws.onopen = () => {
      state.retryMs = RETRY_MIN_MS;
      if (state.auth) {
        if (!state.token) {
          $("auth").hidden = false;
          setLink("token needed", "down");
          return;
        }
        ws.send("AUTH " + state.token);
        setLink("signing in…");
        return;
      }
      linkUp();
    };
    ws.onmessage = (message) => receive(message.data);
    ws.onclose = () => {
      if (state.ws === ws) linkLost("disconnected");
    };
  }

  function linkUp() {
    state.ready = true;
    $("auth").hidden = true;
    setLink(state.connectedOnce ? "reconnected" : "connected", "up");
    state.connectedOnce = true;
    refresh();
  }

  function linkLost(why) {
    state.ready = false;
    state.ws = null;
    for (const request of state.pending.splice(0)) settle(request, "lost", "connection lost");
    const seconds = (state.retryMs / 1000).toFixed(1);
    setLink(`${state.refusal || why}: reconnecting in ${seconds} s`, "down");
    setTimeout(connect, state.retryMs);
    state.retryMs = Math.min(state.retryMs * 2, RETRY_MAX_MS);
  }

  $("auth").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token").value;
    state.refusal = "";
    sessionStorage.setItem("iotvideo-signaling-token", state.token);
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send("AUTH " + state.token);
    } else {
      connect();
    }
  });

  // -- requests and replies -------------------------------------------------------------------

  function send(raw, label, id) {
    const request = { raw, label, id, sent: performance.now(), item: logRequest(label, raw), timer: null, done: false };
    if (!state.ready) {
      settle(request, "lost", "not connected");
      return;
    }
    state.ws.send(raw);
    state.pending.push(request);
    request.timer = setTimeout(() => {
      if (!request.done) settle(request, "timeout", `no reply within ${TIMEOUT_MS / 1000} s`);
    }, TIMEOUT_MS);
  }

  function command(topic, fields, top) {
    state.messageId += 1;
    const body = Object.assign({ topic, message_id: state.messageId }, top || {});
    if (fields) body.data = fields;
    send(PREFIX + JSON.stringify(body), topic, state.messageId);
  }

  function takeRequest(value) {
    const id = value && !Array.isArray(value) ? value.message_id : undefined;
    let index = id === undefined ? 0 : state.pending.findIndex((request) => request.id === id);
    if (index < 0) index = 0;
    return state.pending.splice(index, 1)[0];
  }

  function receive(data) {
    if (typeof data !== "string") return; // the daemon sends text only
    const text = data.split("\u0000")[0];
    let value;
    try {
      value = JSON.parse(text);
    } catch (error) {
      value = undefined;
    }
    if (value && typeof value === "object" && !Array.isArray(value) && "event" in value) {
      showEvent(value.event);
      return;
    }
    if (value && value.confirmation_topic === "auth") {
      authAnswer(value);
      return;
    }
    const request = takeRequest(value); // (a timed-out request still gets its late reply)
    if (!request) return;
    if (value === undefined) {
      settle(request, "invalid", "the reply is not JSON", text);
      return;
    }
    const code = replyCode(value);
    settle(request, code === "0" ? "ok" : "error", code, text);
    apply(request.label, value);
  }

  function authAnswer(value) {
    if (value.result === "0") {
      linkUp();
      return;
    }
    state.token = "";
    state.refusal = "token refused: " + (value.reason || value.result);
    sessionStorage.removeItem("iotvideo-signaling-token");
    $("auth").hidden = false;
    setLink(state.refusal, "down");
  }

  function replyCode(value) {
    if (Array.isArray(value)) return value.length && value[0].status !== undefined ? String(value[0].status) : "?";
    if (value.result !== undefined) return String(value.result);
    if (value.status !== undefined) return String(value.status);
    return "0"; // inner_define data (record lists)
  }

  function settle(request, kind, code, text) {
    const late = request.done;
    request.done = true;
    clearTimeout(request.timer);
    const ms = performance.now() - request.sent;
    const item = late ? logRequest(request.label + " (late reply)", request.raw) : request.item;
    item.className = kind;
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = ` → ${ms.toFixed(1)} ms, `;
    const codeSpan = document.createElement("span");
    codeSpan.className = "code";
    codeSpan.textContent = kind === "ok" || kind === "error" ? `result ${code}` : code;
    item.append(meta, codeSpan);
    if (text !== undefined) {
      const reply = document.createElement("div");
      reply.textContent = text;
      item.append(reply);
    }
  }

  function logRequest(label, raw) {
    const log = $("log");
    const item = document.createElement("li");
    const head = document.createElement("strong");
    head.textContent = label + " ";
    const body = document.createElement("span");
    body.textContent = raw.length > 300 ? raw.slice(0, 300) + "…" : raw;
    item.append(head, body);
    log.append(item);
    while (log.children.length > LOG_MAX) log.firstElementChild.remove();
    log.scrollTop = log.scrollHeight;
    return item;
  }

  // -- what replies and events tell about the camera -------------------------------------------

  function apply(topic, value) {
    if (Array.isArray(value)) {
      const meaning = { 0: "accepted", 1: "refused (busy or standby)", 405: "too many viewers", 406: "not supported" };
      const first = value[0] || {};
      $("admission").textContent = `status ${first.status} (${meaning[first.status] || "?"}), ${first.appConnectNum} connected`;
      return;
    }
    if (value.result !== "0") return;
    if (topic === "get_status") {
      show("power", value.status);
      show("user_num", value.user_num);
      show("signal_strength", value.signal_strength);
    } else if (topic === "version") {
      show("version", value.info);
    } else if (topic === "intercom") {
      show("intercom", value.status);
    } else if (topic === "ptz") {
      showPtz(value.current_x, value.current_y, value);
    } else if (topic === "set_status" || topic === "Mirror_flip") {
      command("get_status");
    }
  }

  function show(id, value) {
    if (value !== undefined && value !== null) $(id).textContent = String(value);
  }

  let limits = null;

  function showPtz(x, y, reply) {
    if (reply && reply.max_x !== undefined) {
      limits = { minX: reply.min_x, maxX: reply.max_x, minY: reply.min_y, maxY: reply.max_y };
    }
    if (x === undefined || x === null) return;
    const apex = reply && reply.apex === "yes";
    const range = limits ? ` in [${limits.minX}…${limits.maxX}] × [${limits.minY}…${limits.maxY}]` : "";
    $("ptz").textContent = `x ${x}, y ${y}${range}${apex ? ", at an end stop (apex)" : ""}`;
    if (reply && reply.apex !== undefined) $("ptz-map").classList.toggle("apex", apex);
    if (!limits) return;
    const fx = limits.maxX > limits.minX ? (x - limits.minX) / (limits.maxX - limits.minX) : 0.5;
    const fy = limits.maxY > limits.minY ? (y - limits.minY) / (limits.maxY - limits.minY) : 0.5;
    const cx = 6 + fx * 188;
    const cy = 94 - fy * 88; // up is up
    $("ptz-dot").setAttribute("cx", cx.toFixed(1));
    $("ptz-dot").setAttribute("cy", cy.toFixed(1));
    $("ptz-h").setAttribute("y1", cy.toFixed(1));
    $("ptz-h").setAttribute("y2", cy.toFixed(1));
    $("ptz-v").setAttribute("x1", cx.toFixed(1));
    $("ptz-v").setAttribute("x2", cx.toFixed(1));
  }

  function showEvent(event) {
    const data = event.data || {};
    const list = $("events");
    const item = document.createElement("li");
    item.textContent = `${event.kind} ${JSON.stringify(data)}`;
    list.append(item);
    while (list.children.length > LOG_MAX) list.firstElementChild.remove();
    list.scrollTop = list.scrollHeight;
    switch (event.kind) {
      case "power":
        show("power", data.status);
        break;
      case "flip":
        show("flip", data.mode);
        break;
      case "ptz":
        showPtz(data.x, data.y, null);
        break;
      case "intercom":
        show("intercom", data.state);
        break;
      case "stream":
      case "session":
        command("get_status");
        break;
      case "upgrade":
        $("upgrade-progress").value = data.percent || 0;
        $("upgrade-state").textContent = `${data.state} ${data.percent}%${data.reason ? ": " + data.reason : ""}`;
        if (data.state === "done") command("version", {});
        break;
      case "sd_format":
        $("upgrade-state").dataset.sd = data.state;
        break;
      default:
        break;
    }
  }

  function refresh() {
    command("get_status");
    command("version", {});
    command("intercom");
    command("ptz", { cmd: "ptz_release_pre" }); // the position, and no move left running
  }

  // -- controls --------------------------------------------------------------------------------

  const click = (id, action) => $(id).addEventListener("click", action);
  click("get_status", () => command("get_status"));
  click("version-button", () => command("version", {}));
  click("intercom-button", () => command("intercom"));
  click("flip-normal", () => command("Mirror_flip", { mode: "normal" }));
  click("flip-flip", () => command("Mirror_flip", { mode: "flip" }));
  click("power-standby", () => command("set_status", { status: "standby" }));
  click("power-working", () => command("set_status", { status: "working" }));
  click("sd_format", () => command("sd_format"));
  click("bind_status", () => command("bind_status", null, { status: "success" }));
  click("upgrade-cancel", () => command("upgrade_cancel"));
  click("get_device_st", () => {
    const type = $("stream-type").value;
    send(`action=inner_define&channel=0&cmd=get_device_st&type=${encodeURIComponent(type)}&quality=high`, "get_device_st");
  });

  $("upgrade-form").addEventListener("submit", (event) => {
    event.preventDefault();
    $("upgrade-progress").value = 0;
    command("upgrade", {
      url: $("upgrade-url").value,
      md5: $("upgrade-md5").value,
      fileSize: Number($("upgrade-size").value),
    });
  });

  $("raw-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const raw = $("raw").value.replace(/\r?\n$/, "");
    if (raw) send(raw, "raw");
  });

  // -- the PTZ pad, as the panel does it -------------------------------------------------------

  function press(direction, button) {
    const ptz = state.ptz;
    if (ptz.releaseTimer !== null) {
      clearTimeout(ptz.releaseTimer); // a press within 500 ms of a release: no release in between
      ptz.releaseTimer = null;
    }
    ptz.pressed = button;
    button.classList.add("held");
    command("ptz", { cmd: `ptz_${direction}_press` });
  }

  function releaseLater() {
    const ptz = state.ptz;
    if (ptz.pressed === null) return;
    ptz.pressed.classList.remove("held");
    ptz.pressed = null;
    ptz.releaseTimer = setTimeout(releaseNow, RELEASE_MS);
  }

  function releaseNow() {
    const ptz = state.ptz;
    const due = ptz.pressed !== null || ptz.releaseTimer !== null;
    if (ptz.releaseTimer !== null) clearTimeout(ptz.releaseTimer);
    ptz.releaseTimer = null;
    if (ptz.pressed !== null) ptz.pressed.classList.remove("held");
    ptz.pressed = null;
    if (due) command("ptz", { cmd: "ptz_release_pre" });
  }

  for (const button of document.querySelectorAll("button.ptz")) {
    button.addEventListener("pointerdown", (event) => {
      if (event.button !== 0 || state.ptz.pressed !== null) return;
      button.setPointerCapture(event.pointerId);
      press(button.dataset.direction, button);
    });
    button.addEventListener("pointerup", releaseLater);
    button.addEventListener("pointercancel", releaseNow);
    button.addEventListener("lostpointercapture", () => {
      if (state.ptz.pressed === button) releaseLater();
    });
    button.addEventListener("keydown", (event) => {
      if ((event.key === " " || event.key === "Enter") && !event.repeat && state.ptz.pressed === null) {
        press(button.dataset.direction, button);
      }
    });
    button.addEventListener("keyup", (event) => {
      if (event.key === " " || event.key === "Enter") releaseLater();
    });
  }
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") releaseNow();
  });

  // -- start -----------------------------------------------------------------------------------

  fetch("panel.json", { cache: "no-store" })
    .then((response) => response.json())
    .then((config) => {
      state.auth = Boolean(config.auth);
      connect();
    })
    .catch(() => connect());
})();
