// The page talks to the server's own OpenAI-style API: GET /v1/models, POST /v1/completions (streamed).
"use strict";

const $ = (id) => document.getElementById(id);
let models = [];
let text = "";
let controller = null;

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api_key").value.trim();
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

function setStatus(message, isError = false) {
  $("status").textContent = message;
  $("status").classList.toggle("error", isError);
}

async function loadModels() {
  const response = await fetch("/v1/models", { headers: headers() });
  if (!response.ok) { setStatus(await errorText(response), true); return; }
  models = (await response.json()).data;
  showDefaults();
  $("model").innerHTML = "";
  for (const m of models) $("model").add(new Option(m.id, m.id));
  showModel();
}

// An empty field sends null and the server's default applies; the placeholder shows what that is.
async function showDefaults() {
  const response = await fetch("/info", { headers: headers() });
  if (!response.ok) return;
  const defaults = (await response.json()).sampling_defaults || {};
  if (defaults.temperature != null) $("temperature").placeholder = String(defaults.temperature);
}

function showModel() {
  const m = models.find((x) => x.id === $("model").value);
  if (!m) return;
  const loss = m.held_out_loss == null ? "" : `, held-out loss ${m.held_out_loss.toFixed(3)}`;
  $("model-facts").textContent =
    `${m.level} level ${m.cell.toUpperCase()} ${m.num_layers}×${m.hidden_size}, ${m.vocab_size} tokens, ` +
    `trained on ${m.corpus}${loss}`;
  $("speaker").innerHTML = "";
  $("speaker").add(new Option("(none)", ""));
  for (const s of m.speakers) $("speaker").add(new Option(s, s));
}

// A script line is "NAME: speech", "[direction]" or anything else (prose), shown in the text's own case
// (as the terminal shows it); a blank line leaves a gap, as in the text. Scene headings are the lines
// the Fountain writer (data/fountain.py) makes headings of: [INT. ...], [.HEADING], [SCENE II. ...],
// a transcript's [setting: ...]; parentheticals in a speech are set apart, as Fountain sets them.
const SPEECH = /^([^\s:\[][^:\n]{0,40}?)[ \t]*:[ \t]?(.*)$/;
const HEADING = /^\[\s*(?:(?:INT|EXT|EST|I\/E)[ .]|\.(?!\.)|(?:ACT|SCENE)\s+[IVXLC]+\b|(?:PROLOGUE|EPILOGUE|INDUCTION)\b|(?:setting|location|scene)\s*:)/i;

function render() {
  const script = $("script");
  script.replaceChildren();
  let gap = false;
  for (const line of text.split("\n")) {
    if (!line.trim()) { gap = script.childElementCount > 0; continue; }
    const div = document.createElement("div");
    div.className = "line";
    const match = line.startsWith("[") ? null : SPEECH.exec(line);
    if (match) {
      const speaker = document.createElement("span");
      speaker.className = "speaker";
      speaker.textContent = match[1];
      div.append(speaker, speech(match[2] || ""));
    } else {
      div.classList.add(HEADING.test(line) ? "heading" : line.startsWith("[") ? "direction" : "prose");
      div.textContent = line;
    }
    if (gap) div.classList.add("after-gap");
    gap = false;
    script.append(div);
  }
}

// The words of a speech, each (parenthetical) in a span of its own.
function speech(words) {
  const span = document.createElement("span");
  span.className = "speech";
  for (const piece of words.split(/(\([^()]*\))/)) {
    if (!piece) continue;
    if (piece.startsWith("(") && piece.endsWith(")")) {
      const note = document.createElement("span");
      note.className = "parenthetical";
      note.textContent = piece;
      span.append(note);
    } else {
      span.append(piece);
    }
  }
  return span;
}

async function errorText(response) {
  try { const body = await response.json(); return body.message || body.detail || response.statusText; }
  catch { return response.statusText; }
}

function numberOrNull(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);
}

async function generate(event) {
  event.preventDefault();
  const prime = $("prime").value || $("speaker").value;
  const body = {
    model: $("model").value, prompt: prime, stream: true,
    max_tokens: numberOrNull("max_tokens"), temperature: numberOrNull("temperature"),
    top_k: numberOrNull("top_k"), top_p: numberOrNull("top_p"), seed: numberOrNull("seed"),
  };
  controller = new AbortController();
  $("generate").disabled = true; $("stop").disabled = false;
  setStatus("writing…");
  text = "";
  try {
    const response = await fetch("/v1/completions", {
      method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal,
    });
    if (!response.ok) { setStatus(await errorText(response), true); return; }
    text = prime;  // the completion continues the prime (from "jerry" it starts with ":")
    render();
    await readStream(response);
    setStatus(`done: ${text.length} characters`);
  } catch (error) {
    setStatus(error.name === "AbortError" ? "stopped" : String(error), error.name !== "AbortError");
  } finally {
    $("generate").disabled = false; $("stop").disabled = true;
    $("copy").disabled = $("download").disabled = text === "";
  }
}

async function readStream(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const chunk = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (!chunk.startsWith("data: ")) continue;
      const data = chunk.slice(6);
      if (data === "[DONE]") return;
      const message = JSON.parse(data);
      if (message.error) throw new Error(message.error.message);
      text += message.choices[0].text;
      render();
    }
  }
}

$("controls").addEventListener("submit", generate);
$("stop").addEventListener("click", () => controller && controller.abort());
$("model").addEventListener("change", showModel);
$("copy").addEventListener("click", async () => {
  try { await navigator.clipboard.writeText(text); setStatus("copied"); }
  catch { setStatus("copy is not allowed here; select the text instead", true); }
});
$("download").addEventListener("click", () => {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
  link.download = "scene.txt";
  link.click();
  URL.revokeObjectURL(link.href);
});
$("api_key").addEventListener("change", loadModels);
loadModels();
