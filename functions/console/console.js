// The admin console: a small client of the admin API (/api/manage/...), no framework.
// Every value from the API is put on the page as text (textContent), never as markup.

import { startCall } from "./softphone.js";

const API = new URL("../manage/", import.meta.url); // served at /api/console/console.js
const TOKEN_KEY = "reddytalk-admin-token";
const SVG = "http://www.w3.org/2000/svg";
const CHANGES = { book: "booked", reschedule: "moved", cancel: "cancelled" };

const $ = (id) => document.getElementById(id);
let token = null;
let clinic = null; // {id, name, time_zone}
let calls = [];
let hasPhoneLine = false; // the softphone has a phone line here (the local stack)
let phoneCall = null; // the softphone's call in progress

// -- what the page says -----------------------------------------------------------

function say(text) {
  $("status").textContent = text;
  $("error").textContent = "";
}

function fail(error) {
  $("status").textContent = "";
  $("error").textContent = error.message || String(error);
}

function el(tag, text, attributes = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

function row(cells, header = 0) {
  const tr = document.createElement("tr");
  cells.forEach((cell, i) => {
    const td = i < header ? el("th", null, { scope: "row" }) : el("td");
    if (cell instanceof Node) td.append(cell);
    else td.textContent = cell === null || cell === undefined ? "–" : String(cell);
    tr.append(td);
  });
  return tr;
}

function button(text, label, onClick) {
  const b = el("button", text, { type: "button" });
  if (label) b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

function when(iso) {
  const options = { dateStyle: "medium", timeStyle: "medium" };
  if (clinic && clinic.time_zone) options.timeZone = clinic.time_zone;
  return new Date(iso).toLocaleString(undefined, options);
}

function pairs(object) {
  return Object.entries(object || {})
    .map(([key, value]) => `${key}: ${typeof value === "object" ? JSON.stringify(value) : value}`)
    .join("; ");
}

// -- the API ----------------------------------------------------------------------

async function api(path, method = "GET") {
  const response = await fetch(new URL(path, API), {
    method,
    headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
    cache: "no-store",
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (response.status === 401) {
    showSignIn();
    throw new Error("The token was refused (401): enter a valid admin token.");
  }
  if (!response.ok) {
    const reason = body && body.error ? body.error : response.statusText;
    throw new Error(`The request failed (${response.status}): ${reason}`);
  }
  return body;
}

const clinicPath = (rest = "") => `clinics/${encodeURIComponent(clinic.id)}${rest}`;

// -- the token --------------------------------------------------------------------

async function easyAuthToken() {
  // App Service Authentication with its token store answers /.auth/me on this origin.
  try {
    const response = await fetch("/.auth/me", { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) return null;
    const identities = await response.json();
    const found = Array.isArray(identities) ? identities.find((i) => i.access_token) : null;
    return found ? found.access_token : null;
  } catch {
    return null;
  }
}

function showSignIn() {
  $("sign-in").hidden = false;
  $("token").focus();
}

async function start(newToken) {
  token = newToken;
  say("Loading clinics…");
  const { clinics, softphone } = await api("clinics");
  hasPhoneLine = Boolean(softphone);
  const select = $("clinic");
  select.replaceChildren(...clinics.map((c) => el("option", `${c.name} (${c.id})`, { value: c.id })));
  select.clinics = clinics;
  $("sign-in").hidden = true;
  $("clinic-section").hidden = false;
  say(`${clinics.length} clinic(s). Choose one and press Show.`);
  select.focus();
}

// -- a clinic's calls, messages and latency ---------------------------------------

let showing = 0; // the latest showClinic: an older one still loading puts nothing on the page

async function showClinic() {
  const select = $("clinic");
  clinic = select.clinics.find((c) => c.id === select.value);
  if (!clinic) return;
  const mine = ++showing;
  const isCurrent = () => mine === showing;
  $("call-section").hidden = true;
  $("phone-section").hidden = !hasPhoneLine;
  say(`Loading ${clinic.name}…`);
  calls = [];
  $("calls").tBodies[0].replaceChildren();
  await Promise.all([loadCalls(null, isCurrent), loadChanges(isCurrent), loadMessages(isCurrent)]);
  if (isCurrent()) say(`${clinic.name}: ${calls.length} call(s) listed.`);
}

async function loadCalls(before = null, isCurrent = () => true) {
  const query = before ? `?before=${encodeURIComponent(before)}` : "";
  const page = (await api(clinicPath(`/calls${query}`))).calls;
  if (!isCurrent()) return;
  calls.push(...page);
  const body = $("calls").tBodies[0];
  for (const call of page) {
    const turns = call.turns || [];
    const opener = button("Open call", `Open the call of ${when(call.started_at)}`, () =>
      openCall(call.call_id).catch(fail),
    );
    const tr = row([
      when(call.started_at),
      call.caller_number,
      `${call.duration_s} s`,
      call.outcome,
      turns.map((t) => t.tier || "–").join(", "),
      turns.map((t) => `${ms(t.first_frame_ms)} / ${ms(t.first_content_ms)}`).join(", "),
      opener,
    ], 1);
    tr.dataset.callId = call.call_id;
    body.append(tr);
  }
  const more = $("more-calls");
  more.hidden = page.length < 50;
  $("calls-section").hidden = false;
  drawLatency();
}

async function loadChanges(isCurrent) {
  const { appointments } = await api(clinicPath("/appointments"));
  if (!isCurrent()) return;
  const rows = appointments.map((a) => {
    const opener = button("Open call", `Open the call that ${a.change} appointment ${a.appointment_id}`,
      () => openCall(a.call_id).catch(fail));
    const appointment = a.moved_to ? `${a.appointment_id} (moved to ${a.moved_to})` : a.appointment_id;
    const tr = row([when(a.at), a.change, appointment, opener], 1);
    tr.dataset.callId = a.call_id;
    return tr;
  });
  $("changes").tBodies[0].replaceChildren(...(rows.length ? rows : [row(["none", "", "", ""], 0)]));
  $("changes-section").hidden = false;
}

async function loadMessages(isCurrent) {
  const { messages } = await api(clinicPath("/messages"));
  if (!isCurrent()) return;
  const body = $("messages").tBodies[0];
  body.replaceChildren();
  for (const message of messages) {
    const status = el("span", message.status);
    const done = button("Mark done", `Mark the message from ${message.caller_name || "the caller"} done`,
      () => markDone(message, status, done).catch(fail));
    done.disabled = message.status === "done";
    const opener = button("Open call", `Open the call of the message from ${message.caller_name || "the caller"}`,
      () => openCall(message.call_id).catch(fail));
    const tr = row([when(message.taken_at), message.caller_name, message.text, opener, status, done], 1);
    tr.dataset.messageId = message.message_id;
    body.append(tr);
  }
  $("messages-section").hidden = false;
}

async function markDone(message, status, done) {
  done.disabled = true;
  try {
    await api(clinicPath(`/messages/${encodeURIComponent(message.message_id)}/done`), "POST");
  } catch (error) {
    done.disabled = false;
    throw error;
  }
  status.textContent = "done";
  say(`The message from ${message.caller_name || "the caller"} is marked done.`);
}

// -- one call ---------------------------------------------------------------------

async function openCall(callId) {
  say("Opening the call…");
  const id = encodeURIComponent(callId);
  const call = await api(clinicPath(`/calls/${id}`)); // audited as call.viewed
  const { audit } = await api(clinicPath(`/calls/${id}/audit`));
  const section = $("call-section");
  $("call-heading").textContent = `Call of ${when(call.started_at)}`;
  const facts = [
    ["Call id", call.call_id], ["Caller number", call.caller_number],
    ["Duration", `${call.duration_s} s`], ["Outcome", call.outcome],
  ];
  $("call-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", k), el("dd", v ?? "–")]));
  $("transcript").tBodies[0].replaceChildren(
    ...(call.transcript || []).map((t) => row([t.speaker, t.text], 1)));
  const tools = call.tool_calls || [];
  $("tool-calls").tBodies[0].replaceChildren(
    ...tools.map((t) => row([t.name, pairs(t.arguments), pairs(t.result)], 1)));
  const changes = tools.filter((t) => t.name in CHANGES);
  $("appointments").tBodies[0].replaceChildren(...(changes.length
    ? changes.map((t) => row([CHANGES[t.name], pairs({ ...t.arguments, ...t.result }),
        el("a", call.call_id, { href: "#call-heading" })], 1))
    : [row(["none", "", ""], 0)]));
  $("audit").tBodies[0].replaceChildren(
    ...audit.map((e) => row([when(e.at), e.action, e.resource, pairs(e.details)], 1)));
  section.hidden = false;
  $("call-heading").focus();
  say("Call opened; the view was recorded in its audit trail.");
}

// -- the latency chart ------------------------------------------------------------

function svg(tag, attributes = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== null) node.textContent = String(text);
  return node;
}

function ms(value) {
  return typeof value === "number" ? String(Math.round(value)) : "–";
}

// Two series per turn: first sound (any first frame, a cached "Let me check." too) and
// first content (the first frame of the words that answer the caller).
const SERIES = [
  { key: "first_frame_ms", name: "first sound", shape: "dot sound" },
  { key: "first_content_ms", name: "first content", shape: "dot content" },
];

function drawLatency() {
  const points = calls.flatMap((c) => (c.turns || []).flatMap((t) => SERIES
    .filter((s) => typeof t[s.key] === "number")
    .map((s) => ({ x: Date.parse(c.started_at), y: t[s.key], call: c, turn: t, series: s }))));
  const width = 640, height = 260, left = 56, right = 16, top = 12, bottom = 40;
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart",
    "aria-label": `First sound and first content per turn: ${points.length} points of ${calls.length} calls`,
  });
  chart.append(svg("title", {}, "First sound and first content per turn over time"));
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  const x0 = Math.min(...xs, Date.now()) - 60_000, x1 = Math.max(...xs, Date.now()) + 60_000;
  const y1 = Math.max(1000, ...ys) * 1.1;
  const sx = (x) => left + ((x - x0) / (x1 - x0)) * (width - left - right);
  const sy = (y) => height - bottom - (y / y1) * (height - top - bottom);
  chart.append(svg("line", { x1: left, y1: sy(0), x2: width - right, y2: sy(0), class: "axis" }));
  chart.append(svg("line", { x1: left, y1: top, x2: left, y2: sy(0), class: "axis" }));
  const step = y1 > 4000 ? 1000 : 500;
  for (let y = 0; y <= y1; y += step) {
    chart.append(svg("text", { x: left - 6, y: sy(y) + 4, "text-anchor": "end" }, y));
  }
  chart.append(svg("text", { x: left, y: height - 20, "text-anchor": "start" }, when(new Date(x0).toISOString())));
  chart.append(svg("text", { x: width - right, y: height - 20, "text-anchor": "end" }, when(new Date(x1).toISOString())));
  chart.append(svg("text", { x: (left + width) / 2, y: height - 4, "text-anchor": "middle" }, "call start time"));
  chart.append(svg("text", { x: 12, y: top + 10, "text-anchor": "start" }, "ms"));
  for (const p of points) {
    const attributes = { class: `${p.series.shape} tier-${p.turn.tier || "none"}` };
    const dot = p.series.key === "first_frame_ms"
      ? svg("circle", { ...attributes, cx: sx(p.x), cy: sy(p.y), r: 4 })
      : svg("rect", { ...attributes, x: sx(p.x) - 4, y: sy(p.y) - 4, width: 8, height: 8 });
    dot.append(svg("title", {}, `${when(p.call.started_at)}, turn ${p.turn.turn}, ${p.series.name}: ${Math.round(p.y)} ms (${p.turn.tier || "no tier"})`));
    chart.append(dot);
  }
  SERIES.forEach((s, i) => {  // the legend: circle = first sound, square = first content
    const y = top + 8 + i * 16, x = width - right - 130;
    chart.append(s.key === "first_frame_ms"
      ? svg("circle", { cx: x, cy: y, r: 4, class: s.shape })
      : svg("rect", { x: x - 4, y: y - 4, width: 8, height: 8, class: s.shape }));
    chart.append(svg("text", { x: x + 10, y: y + 4, "text-anchor": "start" }, s.name));
  });
  $("latency-chart").replaceChildren(chart);
  $("latency-section").hidden = false;
}

// -- the softphone ----------------------------------------------------------------

const SPEAKERS = { caller: "You", receptionist: "Receptionist" };
const pendingLines = {}; // speaker → the <li> of their line still being heard or said

function showLine({ speaker, text, final }) {
  let li = pendingLines[speaker];
  if (!li) {
    li = el("li", null, { "data-speaker": speaker });
    li.append(el("span", SPEAKERS[speaker] || speaker, { class: "speaker" }), el("span"));
    $("live-transcript").append(li);
  }
  li.lastChild.textContent = text;
  li.classList.toggle("pending", !final);
  if (final) delete pendingLines[speaker];
  else pendingLines[speaker] = li;
}

function phoneState(state, reason) {
  const words = {
    connecting: "Calling…",
    connected: "Connected: speak when the receptionist has finished.",
    ended: `The call ended${reason ? ` (${reason})` : ""}.`,
    failed: `The call failed: ${reason || "unknown reason"}.`,
  };
  $("phone-status").textContent = words[state] || state;
  const busy = state === "connecting" || state === "connected";
  $("phone-call").disabled = busy;
  $("phone-hang-up").disabled = !busy;
}

async function callReceptionist() {
  $("live-transcript").replaceChildren();
  for (const speaker of Object.keys(pendingLines)) delete pendingLines[speaker];
  phoneState("connecting");
  let dial;
  try {
    dial = await api(clinicPath("/softphone"), "POST"); // a new call id, audited
    phoneCall = await startCall({
      lineUrl: dial.line_url,
      sampleRate: dial.sample_rate_hz,
      participantRawId: dial.participant_raw_id,
      onTranscript: showLine,
      onState: phoneState,
    });
  } catch (error) {
    phoneState("failed", error.message || String(error));
    return;
  }
  const reason = await phoneCall.ended;
  phoneCall = null;
  for (const [speaker, li] of Object.entries(pendingLines)) { // cut off by the hang-up
    li.lastChild.textContent += " [interrupted]";
    li.classList.remove("pending");
    delete pendingLines[speaker];
  }
  phoneState("ended", reason);
  // The call's record is written as it ends: list it.
  setTimeout(() => showClinic().catch(fail), 1000);
}

// -- wiring -----------------------------------------------------------------------

$("phone-call").addEventListener("click", () => callReceptionist().catch(fail));
$("phone-hang-up").addEventListener("click", () => {
  if (phoneCall) phoneCall.hangUp().catch(fail);
});

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("token").value.trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $("token").value = "";
  start(value).catch(fail);
});

$("clinic-form").addEventListener("submit", (event) => {
  event.preventDefault();
  showClinic().catch(fail);
});

$("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  if (phoneCall) phoneCall.hangUp().catch(fail);
  for (const id of ["clinic-section", "phone-section", "calls-section", "changes-section", "call-section", "messages-section", "latency-section"]) {
    $(id).hidden = true;
  }
  say("The token is forgotten.");
  showSignIn();
});

$("more-calls").addEventListener("click", () => {
  const last = calls[calls.length - 1];
  if (last) loadCalls(last.started_at).catch(fail);
});

(async () => {
  const found = (await easyAuthToken()) || sessionStorage.getItem(TOKEN_KEY);
  if (found) await start(found);
  else say("Enter the admin token to begin.");
})().catch(fail);
