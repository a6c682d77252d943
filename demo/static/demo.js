// tv2dydx demo page: a Telegram-like chat with the (real) bot through the simulated Telegram,
// and the simulation's controls. Text is only ever inserted as text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { rev: "", nodes: new Map(), hookUrl: null, prices: {}, ticker: "ETH-USD", lastPrice: null };

async function api(path, body) {
  const options = { headers: { "X-Tv2dydx-Demo": "1" } };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

function toast(text, long) {
  const el = $("toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, long ? 6000 : 2800);
}

function safeUrl(raw) {
  try {
    const url = new URL(raw);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch (_error) {
    return null;
  }
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function link(href, text) {
  const url = safeUrl(href);
  if (!url) return el("span", "", text);
  const a = el("a", "", text);
  a.href = url;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

// One entity's element; its children are added by the caller.
function wrapper(entity, text) {
  switch (entity.type) {
    case "bold": return el("b");
    case "italic": return el("i");
    case "underline": return el("u");
    case "strikethrough": return el("s");
    case "code": return el("code");
    case "pre": return el("pre");
    case "blockquote": case "expandable_blockquote": return el("blockquote");
    case "text_link": return link(entity.url, "");
    case "url": return link(/^https?:\/\//i.test(text) ? text : `https://${text}`, "");
    case "spoiler": {
      const span = el("span", "spoiler");
      span.addEventListener("click", () => span.classList.add("shown"));
      return span;
    }
    case "bot_command": {
      const span = el("span", "cmd");
      span.title = "Send this command";
      span.addEventListener("click", () => send(text));
      return span;
    }
    default: return el("span");
  }
}

const BLOCKS = new Set(["pre", "blockquote", "expandable_blockquote"]);

// Telegram entities (offsets in UTF-16 code units, as JavaScript strings count) as a tree.
function renderText(text, entities) {
  const sorted = [...entities].sort((a, b) => a.offset - b.offset || b.length - a.length);
  const build = (start, end, list) => {
    const fragment = document.createDocumentFragment();
    let position = start;
    let index = 0;
    while (index < list.length) {
      const entity = list[index];
      const from = Math.max(entity.offset, position);
      const to = Math.min(entity.offset + entity.length, end);
      let next = index + 1;
      const inner = [];
      while (next < list.length && list[next].offset < to) {
        const child = list[next];
        const childEnd = Math.min(child.offset + child.length, to);
        if (childEnd > child.offset) inner.push({ ...child, length: childEnd - child.offset });
        next += 1;
      }
      if (from > position) fragment.append(text.slice(position, from));
      if (to > from) {
        const node = wrapper(entity, text.slice(from, to));
        node.append(build(from, to, inner));
        fragment.append(node);
        position = to;
        // A block ends its line already: the newline after it would add an empty one.
        if (BLOCKS.has(entity.type) && text[position] === "\n" && position < end) position += 1;
      }
      index = next;
    }
    if (position < end) fragment.append(text.slice(position, end));
    return fragment;
  };
  return build(0, text.length, sorted);
}

function clock(unix) {
  const when = new Date(unix * 1000);
  return when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function keyboard(message) {
  const box = el("div", "keyboard");
  for (const row of message.buttons) {
    const line = el("div", "krow");
    for (const button of row) {
      if (button.kind === "callback_data") {
        const b = el("button", "", button.text);
        b.type = "button";
        b.addEventListener("click", () => press(message.id, button.value, b));
        line.append(b);
      } else if (["url", "web_app", "login_url"].includes(button.kind) && safeUrl(button.value)) {
        const a = link(button.value, button.text);
        a.title = button.kind === "web_app" ? "Opens the Mini App page (here: in a new tab)" : button.value;
        line.append(a);
      } else if (button.kind === "copy_text") {
        const b = el("button", "", button.text);
        b.type = "button";
        b.addEventListener("click", () => navigator.clipboard?.writeText(button.value || "").then(() => toast("Copied")));
        line.append(b);
      } else {
        const b = el("button", "", button.text);
        b.disabled = true;
        line.append(b);
      }
    }
    box.append(line);
  }
  return box;
}

function formatSize(bytes) {
  return bytes > 1024 ? `${(bytes / 1024).toFixed(1)} KB` : `${bytes} B`;
}

function messageNode(message) {
  const wrap = el("div", `msg ${message.from}`);
  wrap.dataset.id = message.id;
  const bubble = el("div", "bubble");
  if (message.photo) {
    bubble.classList.add("media");
    const img = el("img");
    img.src = `/files/${encodeURIComponent(message.photo.file_id)}`;
    img.alt = "Photo from the bot";
    if (message.photo.width) { img.width = message.photo.width; img.height = message.photo.height; }
    img.addEventListener("click", () => lightbox(img.src));
    bubble.append(img);
  }
  if (message.document) {
    const a = el("a", "doc");
    a.href = `/files/${encodeURIComponent(message.document.file_id)}`;
    a.download = message.document.name;
    const icon = el("span", "icon", (message.document.name.split(".").pop() || "file").slice(0, 4).toUpperCase());
    const info = el("span");
    info.append(el("div", "fname", message.document.name), el("div", "fsize", formatSize(message.document.size)));
    a.append(icon, info);
    bubble.append(a);
  }
  const body = el("div", message.photo ? "caption" : "");
  body.append(renderText(message.text, message.entities));
  body.append(el("span", "meta", `${message.edited ? "edited " : ""}${clock(message.date)}${message.from === "user" ? " ✓✓" : ""}`));
  if (message.text || !message.photo) bubble.append(body);
  else bubble.append(el("span", "meta", clock(message.date)));
  wrap.append(bubble);
  if (message.buttons.length) wrap.append(keyboard(message));
  return wrap;
}

function lightbox(src) {
  const box = el("div", "lightbox");
  const img = el("img");
  img.src = src;
  box.append(img);
  box.addEventListener("click", () => box.remove());
  document.body.append(box);
}

function renderChat(view) {
  const list = $("messages");
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 120;
  const seen = new Set();
  let added = false;
  let previous = null;
  for (const message of view.messages) {
    seen.add(message.id);
    const key = JSON.stringify(message);
    const known = state.nodes.get(message.id);
    let node = known && known.key === key ? known.node : null;
    if (!node) {
      node = messageNode(message);
      if (known) known.node.replaceWith(node);
      else added = true;
      state.nodes.set(message.id, { key, node });
    }
    if (node.previousElementSibling !== previous || !node.isConnected) {
      if (previous) previous.after(node); else list.prepend(node);
    }
    previous = node;
  }
  for (const [id, known] of state.nodes) {
    if (!seen.has(id)) { known.node.remove(); state.nodes.delete(id); }
  }
  $("empty-hint").hidden = view.messages.length > 0;
  renderReplyKeyboard(view.reply_keyboard);
  if (added || nearBottom) list.scrollTop = list.scrollHeight;
}

function renderReplyKeyboard(rows) {
  const box = $("reply-keyboard");
  box.replaceChildren();
  box.hidden = !rows || rows.length === 0;
  for (const row of rows || []) {
    const line = el("div", "krow");
    for (const text of row) {
      const b = el("button", "", text);
      b.type = "button";
      b.addEventListener("click", () => send(text));
      line.append(b);
    }
    box.append(line);
  }
}

async function chatLoop() {
  for (;;) {
    try {
      const view = await api(`/api/chat?rev=${encodeURIComponent(state.rev)}`);
      if (!view.unchanged) {
        state.rev = view.rev;
        renderChat(view);
      }
    } catch (_error) {
      $("bot-status").textContent = "demo stopped? retrying…";
      await new Promise((resolve) => setTimeout(resolve, 2000));
      continue;
    }
    $("bot-status").textContent = "bot · simulated Telegram";
  }
}

async function send(text) {
  if (!text.trim()) return;
  try {
    await api("/api/send", { text });
  } catch (error) {
    toast(error.message);
  }
}

async function press(messageId, data, button) {
  button.disabled = true;
  try {
    const answer = await api("/api/press", { message_id: messageId, data });
    if (answer.toast) toast(answer.toast, answer.alert);
  } catch (error) {
    toast(error.message);
  } finally {
    button.disabled = false;
  }
}

function showPrice() {
  const price = state.prices[state.ticker];
  const node = $("price");
  if (price === undefined) return;
  const value = Number(price);
  node.classList.toggle("up", state.lastPrice !== null && value > state.lastPrice);
  node.classList.toggle("down", state.lastPrice !== null && value < state.lastPrice);
  if (state.lastPrice !== value) node.textContent = `$${value.toLocaleString("en-US", { maximumFractionDigits: 4 })}`;
  state.lastPrice = value;
}

async function stateLoop() {
  for (;;) {
    try {
      const view = await api("/api/state");
      $("bot-name").textContent = `${view.bot.name} (@${view.bot.username})`;
      $("owner").value = view.trader.owner_address;
      $("api-key").value = view.trader.api_key;
      $("web-link").href = view.web_url + "/healthz";
      const select = $("ticker");
      if (!select.options.length) {
        for (const ticker of Object.keys(view.prices)) select.append(new Option(ticker, ticker, false, ticker === state.ticker));
      }
      state.prices = view.prices;
      showPrice();
      if (view.webhook && view.webhook.url !== state.hookUrl) {
        state.hookUrl = view.webhook.url;
        $("hook-url").value = view.webhook.url;
        $("alert-body").value = view.webhook.message;
        toast("Webhook issued: the alert is ready to fire");
      }
    } catch (_error) {
      // the chat loop says when the demo is gone
    }
    await new Promise((resolve) => setTimeout(resolve, 1500));
  }
}

function preset(action, position, id) {
  const area = $("alert-body");
  let fields;
  try {
    fields = JSON.parse(area.value);
  } catch (_error) {
    toast("The message is not JSON: edit it by hand");
    return;
  }
  fields.action = action;
  if ("position" in fields) fields.position = position;
  if ("alert_id" in fields) fields.alert_id = `${id}-{{timenow}}`;
  if (action === "buy") Object.assign(fields, { tp_pct: "2", sl_pct: "1" });
  else { delete fields.tp_pct; delete fields.sl_pct; }
  area.value = JSON.stringify(fields, null, 2);
}

async function fire() {
  const result = $("alert-result");
  const button = $("fire");
  button.disabled = true;
  try {
    const answer = await api("/api/alert", { url: $("hook-url").value.trim(), message: $("alert-body").value });
    result.className = `result ${answer.status >= 200 && answer.status < 300 ? "ok" : "bad"}`;
    result.textContent = `HTTP ${answer.status}  ${answer.answer}`;
  } catch (error) {
    result.className = "result bad";
    result.textContent = error.message;
  } finally {
    result.hidden = false;
    button.disabled = false;
  }
}

async function setPrice(price) {
  try {
    const answer = await api("/api/price", { ticker: state.ticker, price: String(price) });
    state.prices[answer.ticker] = answer.price;
    showPrice();
  } catch (error) {
    toast(error.message);
  }
}

function decimalsOf(ticker) {
  return ticker.startsWith("BTC") ? 0 : 2;
}

document.addEventListener("DOMContentLoaded", () => {
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("text");
    const text = input.value;
    input.value = "";
    send(text);
  });
  for (const button of document.querySelectorAll("#shortcuts button")) {
    button.addEventListener("click", () => send(button.dataset.command));
  }
  for (const button of document.querySelectorAll("[data-fill]")) {
    button.addEventListener("click", () => {
      const input = $("text");
      input.value = $(button.dataset.fill).value;
      input.focus();
    });
  }
  $("preset-buy").addEventListener("click", () => preset("buy", "long", "Long"));
  $("preset-sell").addEventListener("click", () => preset("sell", "flat", "Close"));
  $("fire").addEventListener("click", fire);
  $("ticker").addEventListener("change", (event) => { state.ticker = event.target.value; state.lastPrice = null; showPrice(); });
  for (const button of document.querySelectorAll("[data-move]")) {
    button.addEventListener("click", () => {
      const price = Number(state.prices[state.ticker]) * (1 + Number(button.dataset.move) / 100);
      setPrice(price.toFixed(decimalsOf(state.ticker)));
    });
  }
  $("set-price").addEventListener("click", () => setPrice($("price-input").value.trim()));
  chatLoop();
  stateLoop();
});
