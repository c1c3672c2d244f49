/**
 * The kiosk chat page: one self-contained HTML file (plain JS and CSS, no external resource, so
 * it works offline and `deno compile` embeds it as this module's string). It talks to the same
 * server's `/v1/chat/completions` with `stream: true`, shows the text as it arrives, has a stop
 * and a new-conversation button, and shows the model name and decode speed. The layout is a
 * single column of large controls that fits 800x480 (the Raspberry Pi touch display) and scales
 * up to 1920x1080.
 *
 * @module
 */

/** What the page is told by the server. */
export interface KioskConfig {
  model: string;
  /** System prompt of every conversation ("" for none). */
  system: string;
}

/** The page with its configuration embedded. */
export function kioskPage(config: KioskConfig): string {
  // "<" escaped so that no string can close the script element.
  const json = JSON.stringify(config).replaceAll("<", "\\u003c");
  return PAGE.replace("__CONFIG__", json);
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, user-scalable=no">
<title>Bonsai</title>
<style>
  :root { --bg: #101418; --panel: #1b2128; --text: #eef2f5; --muted: #9aa7b3; --accent: #3fb27f; --stop: #d9534f; }
  * { box-sizing: border-box; }
  html, body { margin: 0; height: 100%; background: var(--bg); color: var(--text);
    font: clamp(18px, 2.4vmin + 6px, 30px)/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
  body { display: flex; flex-direction: column; }
  header { display: flex; align-items: center; gap: 0.6em; padding: 0.35em 0.6em; background: var(--panel); }
  header h1 { font-size: 1em; margin: 0; flex: 1; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  #speed { color: var(--muted); font-variant-numeric: tabular-nums; white-space: nowrap; }
  #log { flex: 1; overflow-y: auto; padding: 0.5em 0.6em; -webkit-overflow-scrolling: touch; }
  .msg { max-width: 92%; margin: 0.3em 0; padding: 0.45em 0.7em; border-radius: 0.6em; white-space: pre-wrap;
    overflow-wrap: anywhere; }
  .user { background: #2a5d8f; margin-left: auto; }
  .assistant { background: var(--panel); }
  .error { background: #5a1f1f; }
  form { display: flex; gap: 0.4em; padding: 0.4em 0.6em; background: var(--panel); }
  textarea { flex: 1; min-height: 2.6em; max-height: 6em; resize: none; font: inherit; color: var(--text);
    background: var(--bg); border: 2px solid #33404c; border-radius: 0.5em; padding: 0.4em 0.6em; }
  button { font: inherit; font-weight: 600; min-width: 3.2em; min-height: 2.6em; padding: 0 0.8em; border: 0;
    border-radius: 0.5em; color: #fff; background: var(--accent); touch-action: manipulation; }
  button:disabled { opacity: 0.4; }
  #stop { background: var(--stop); }
  #new { background: #44515e; min-height: 2em; font-size: 0.8em; }
</style>
</head>
<body>
<header>
  <h1 id="model">Bonsai</h1>
  <span id="speed"></span>
  <button id="new" type="button">New conversation</button>
</header>
<main id="log" aria-live="polite"></main>
<form id="form">
  <textarea id="input" rows="1" placeholder="Ask something..." enterkeyhint="send"></textarea>
  <button id="send" type="submit">Send</button>
  <button id="stop" type="button" hidden>Stop</button>
</form>
<script id="config" type="application/json">__CONFIG__</script>
<script>
"use strict";
const config = JSON.parse(document.getElementById("config").textContent);
const $ = (id) => document.getElementById(id);
const log = $("log"), input = $("input"), send = $("send"), stop = $("stop"), speed = $("speed");
$("model").textContent = config.model;
let history = [];
let controller = null;

function bubble(cls, text) {
  const div = document.createElement("div");
  div.className = "msg " + cls;
  div.textContent = text;
  log.appendChild(div);
  log.scrollTop = log.scrollHeight;
  return div;
}

// The bubble is redrawn at most once per frame: a fast model sends chunks faster than a small
// device can lay out a growing text, and the Stop button must stay responsive.
let frame = 0;
let shown = null;
function show(out, text, chunks, started) {
  shown = { out, text, chunks, started };
  if (!frame) frame = requestAnimationFrame(draw);
}
function draw() {
  frame = 0;
  if (!shown) return;
  const { out, text, chunks, started } = shown;
  shown = null;
  out.textContent = text;
  log.scrollTop = log.scrollHeight;
  const s = (performance.now() - started) / 1000;
  if (s > 0.2) speed.textContent = (chunks / s).toFixed(1) + " tok/s";
}

function busy(on) {
  send.hidden = on;
  stop.hidden = !on;
  input.disabled = on;
}

function headers() {
  const h = { "content-type": "application/json" };
  const key = localStorage.getItem("bonsai-api-key");
  if (key) h.authorization = "Bearer " + key;
  return h;
}

async function ask(question) {
  history.push({ role: "user", content: question });
  bubble("user", question);
  const out = bubble("assistant", "");
  out.dataset.state = "streaming";
  controller = new AbortController();
  busy(true);
  let text = "";
  const messages = config.system ? [{ role: "system", content: config.system }, ...history] : history;
  try {
    const res = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({ model: config.model, messages, stream: true, stream_options: { include_usage: true } }),
      signal: controller.signal,
    });
    if (res.status === 401) {
      const key = prompt("API key");
      if (key) localStorage.setItem("bonsai-api-key", key);
    }
    if (!res.ok) {
      const err = await res.json().catch(() => ({}));
      throw new Error((err.error && err.error.message) || ("HTTP " + res.status));
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const started = performance.now();
    let chunks = 0;
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\\n\\n")) >= 0) {
        const frame = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (!frame.startsWith("data: ")) continue;
        const data = frame.slice(6);
        if (data === "[DONE]") continue;
        const obj = JSON.parse(data);
        if (obj.error) throw new Error(obj.error.message);
        const delta = obj.choices && obj.choices[0] && obj.choices[0].delta;
        if (delta && delta.content) {
          text += delta.content;
          chunks++;
          show(out, text, chunks, started);
        }
        if (obj.timings && obj.timings.predicted_per_second) {
          draw();
          speed.textContent = obj.timings.predicted_per_second.toFixed(1) + " tok/s";
        }
      }
    }
    draw();
    out.dataset.state = "done";
  } catch (e) {
    draw();
    if (e.name === "AbortError") {
      out.dataset.state = "stopped";
    } else {
      out.dataset.state = "error";
      out.className = "msg error";
      out.textContent = (text ? text + "\\n" : "") + "Error: " + e.message;
    }
  } finally {
    if (text) history.push({ role: "assistant", content: text });
    else history.pop();
    controller = null;
    busy(false);
    input.focus();
  }
}

$("form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = input.value.trim();
  if (!q || controller) return;
  input.value = "";
  ask(q);
});
input.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey) {
    ev.preventDefault();
    $("form").requestSubmit();
  }
});
stop.addEventListener("click", () => controller && controller.abort());
$("new").addEventListener("click", () => {
  if (controller) controller.abort();
  history = [];
  log.textContent = "";
  speed.textContent = "";
  input.focus();
});
input.focus();
</script>
</body>
</html>
`;
