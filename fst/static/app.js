// fst web page: plain JS, no build step. Talks to /v1/models and /v1/stylize (multipart).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { file: null, model: null, originalUrl: null, resultUrl: null, seq: 0, hasResult: false };

function setStatus(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function setBusy(busy) {
  document.querySelector("#result-frame .busy").hidden = !busy;
  $("stylize").disabled = busy || !state.file || !state.model;
  $("stylize").textContent = busy ? "Painting…" : "Stylize";
}

function stem(name) {
  const base = (name || "photo").replace(/^.*[\\/]/, "");
  return base.includes(".") ? base.slice(0, base.lastIndexOf(".")) : base;
}

// ------------------------------------------------------------------ styles

async function loadModels() {
  const box = $("styles");
  try {
    const res = await fetch("/v1/models");
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const data = await res.json();
    box.textContent = "";
    for (const m of data.models) box.appendChild(styleCard(m));
    selectModel(data.default || (data.models[0] && data.models[0].name));
  } catch (err) {
    box.innerHTML = "";
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = `Could not load the styles (${err.message}).`;
    box.appendChild(p);
  }
}

function styleCard(m) {
  const card = document.createElement("button");
  card.type = "button";
  card.className = "style-card";
  card.dataset.model = m.name;
  card.setAttribute("role", "radio");
  card.setAttribute("aria-checked", "false");
  const title = m.painting || m.name.replace(/_/g, " ");
  card.title = m.artist ? `${title}, ${m.artist}${m.year ? " (" + m.year + ")" : ""}` : title;
  if (m.painting_url) {
    const img = document.createElement("img");
    img.src = m.painting_url;
    img.alt = title;
    img.loading = "lazy";
    card.appendChild(img);
  } else {
    const ph = document.createElement("span");
    ph.className = "noimg";
    ph.textContent = title.slice(0, 1).toUpperCase();
    card.appendChild(ph);
  }
  const cap = document.createElement("span");
  cap.className = "cap";
  const b = document.createElement("b");
  b.textContent = title;
  const i = document.createElement("i");
  i.textContent = m.artist ? `${m.artist}${m.year ? ", " + m.year : ""}` : m.name;
  cap.append(b, i);
  card.appendChild(cap);
  card.addEventListener("click", () => {
    const changed = state.model !== m.name;
    selectModel(m.name);
    if (changed && state.hasResult) stylize();
  });
  return card;
}

function selectModel(name) {
  state.model = name || null;
  for (const card of document.querySelectorAll(".style-card")) {
    card.setAttribute("aria-checked", String(card.dataset.model === name));
  }
  $("stylize").disabled = !state.file || !state.model;
}

// ------------------------------------------------------------------ the photo

function setFile(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    setStatus(`${file.name} is not an image.`, true);
    return;
  }
  state.file = file;
  if (state.originalUrl) URL.revokeObjectURL(state.originalUrl);
  state.originalUrl = URL.createObjectURL(file);
  const img = $("original");
  img.onerror = () => { img.hidden = true; }; // not displayable here: the server will say why
  img.src = state.originalUrl;
  img.hidden = false;
  $("file-name").textContent = file.name || "pasted image";
  clearResult();
  $("stylize").disabled = !state.model;
  setStatus("Ready: pick a style and press Stylize.");
}

// The previous photo's result must never stay beside a new photo, nor after a failed request.
function clearResult() {
  state.hasResult = false;
  $("result").hidden = true;
  $("result").removeAttribute("src");
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = null;
  $("download").hidden = true;
  $("result-info").textContent = "";
}

function wireDrop() {
  const drop = $("drop");
  $("file-input").addEventListener("change", (e) => setFile(e.target.files[0]));
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file-input").click(); }
  });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    setFile(e.dataTransfer.files[0]);
  });
  // Dropping anywhere else must not navigate away from the page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  window.addEventListener("paste", (e) => {
    const item = [...(e.clipboardData?.items || [])].find((it) => it.type.startsWith("image/"));
    if (item) setFile(item.getAsFile());
  });
}

// ------------------------------------------------------------------ stylize

async function stylize() {
  if (!state.file || !state.model) return;
  const seq = ++state.seq;
  const format = $("format").value;
  const form = new FormData();
  form.append("image", state.file, state.file.name || "photo");
  form.append("model", state.model);
  form.append("strength", String($("strength").value / 100));
  form.append("preserve_color", $("preserve").checked ? "true" : "false");
  form.append("max_size", $("max-size").value);
  form.append("stroke_scale", $("stroke-scale").value);
  form.append("format", format);
  setBusy(true);
  setStatus("Painting…");
  const started = performance.now();
  try {
    const res = await fetch("/v1/stylize", { method: "POST", body: form });
    if (seq !== state.seq) return; // a newer request superseded this one
    if (!res.ok) {
      let message = `HTTP ${res.status}`;
      try { message = (await res.json()).error || message; } catch (_) { /* not JSON */ }
      if (res.status === 503) message += " (the server is busy; try again in a moment)";
      throw new Error(message);
    }
    const blob = await res.blob();
    if (seq !== state.seq) return;
    if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
    state.resultUrl = URL.createObjectURL(blob);
    const img = $("result");
    await new Promise((resolve, reject) => {
      img.onload = resolve;
      img.onerror = () => reject(new Error("the answer is not a displayable image"));
      img.src = state.resultUrl;
    });
    img.hidden = false;
    state.hasResult = true;
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    const size = res.headers.get("X-Fst-Size") || `${img.naturalWidth}x${img.naturalHeight}`;
    $("result-info").textContent = `${size.replace("x", " × ")} · ${seconds} s`;
    const ext = format === "jpeg" ? "jpg" : format;
    const link = $("download");
    link.href = state.resultUrl;
    link.download = `${stem(state.file.name)}_${state.model}.${ext}`;
    link.textContent = `Download ${ext.toUpperCase()}`;
    link.hidden = false;
    setStatus(`Done in ${seconds} s.`);
  } catch (err) {
    if (seq === state.seq) {
      clearResult();
      setStatus(`Could not stylize: ${err.message}`, true);
    }
  } finally {
    if (seq === state.seq) setBusy(false);
  }
}

function wireControls() {
  const strength = $("strength");
  strength.addEventListener("input", () => { $("strength-value").textContent = `${strength.value}%`; });
  for (const id of ["strength", "preserve", "stroke-scale"]) {
    $(id).addEventListener("change", () => { if (state.hasResult) stylize(); });
  }
  $("stylize").addEventListener("click", stylize);
}

wireDrop();
wireControls();
loadModels();
