// fst web page: plain JS, no build step. Talks to /v1/models and /v1/stylize (multipart).
"use strict";

const $ = (id) => document.getElementById(id);
// model: the chosen model's name; style: the chosen style of a collection (null for a single-style
// model); styles: each collection's styles, by model name (the mixer's second style comes from there).
const state = { file: null, model: null, style: null, styles: {}, originalUrl: null, resultUrl: null, seq: 0,
                hasResult: false };

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
    const singles = data.models.filter((m) => !(m.styles || []).length);
    if (singles.length) box.appendChild(styleGroup(null, singles.map((m) => styleCard(m, m.name, null))));
    for (const m of data.models.filter((m) => (m.styles || []).length)) {
      state.styles[m.name] = m.styles;
      const cards = m.styles.map((st) => styleCard(st, m.name, st.name));
      box.appendChild(styleGroup(`${m.name} · ${m.styles.length} styles in one network`, cards));
    }
    // The server's default: a model, and for a collection its default style (else its first).
    const first = data.models.find((m) => m.name === data.default) || data.models[0];
    const styles = (first && first.styles) || [];
    const style = styles.find((st) => st.name === data.default_style) || styles[0];
    if (first) selectStyle(first.name, style ? style.name : null);
  } catch (err) {
    box.innerHTML = "";
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = `Could not load the styles (${err.message}).`;
    box.appendChild(p);
  }
}

// A titled group of cards: the single-style models (no title), or the styles of one collection.
function styleGroup(title, cards) {
  const group = document.createElement("div");
  group.className = title ? "group collection" : "group";
  if (title) {
    const h = document.createElement("h3");
    h.textContent = title;
    group.appendChild(h);
  }
  group.append(...cards);
  return group;
}

// m: a model of /v1/models, or a style of a collection's (both have painting, artist, year,
// painting_url); style: that style's name, null for a single-style model.
function styleCard(m, model, style) {
  const card = document.createElement("button");
  card.type = "button";
  card.className = "style-card";
  card.dataset.model = model;
  if (style) card.dataset.style = style;
  card.setAttribute("role", "radio");
  card.setAttribute("aria-checked", "false");
  const title = m.painting || m.name.replace(/_/g, " ");
  const credit = m.artist ? `${title}, ${m.artist}${m.year ? " (" + m.year + ")" : ""}` : title;
  card.title = style ? `${model}: ${credit}` : credit;
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
    const changed = state.model !== model || state.style !== style;
    selectStyle(model, style);
    if (changed && state.hasResult) stylize();
  });
  return card;
}

function selectStyle(model, style) {
  state.model = model || null;
  state.style = style || null;
  for (const card of document.querySelectorAll(".style-card")) {
    const chosen = card.dataset.model === state.model && (card.dataset.style || null) === state.style;
    card.setAttribute("aria-checked", String(chosen));
  }
  fillMixer();
  $("stylize").disabled = !state.file || !state.model;
}

// The mixer offers the other styles of the chosen style's collection; hidden for a single-style model.
function fillMixer() {
  const others = (state.styles[state.model] || []).filter((st) => st.name !== state.style);
  const select = $("mix-style");
  const kept = select.value;
  select.textContent = "";
  for (const st of others) select.add(new Option(st.painting || st.name.replace(/_/g, " "), st.name));
  if (others.some((st) => st.name === kept)) select.value = kept;
  $("mixer").hidden = !others.length;
}

// The chosen style (style) or, with the slider above 0 %, its mix with the second style (mix).
function addStyleFields(form) {
  const share = Number($("mix").value) / 100;
  const second = $("mix-style").value;
  if (state.style && second && share > 0 && !$("mixer").hidden) {
    form.append("mix", `${state.style}=${(1 - share).toFixed(2)},${second}=${share.toFixed(2)}`);
  } else if (state.style) {
    form.append("style", state.style);
  }
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
  addStyleFields(form);
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
    // a collection's answer names its style or mix (X-Fst-Style, URL-encoded)
    const label = decodeURIComponent(res.headers.get("X-Fst-Style") || "") || state.model;
    link.download = `${stem(state.file.name)}_${label}.${ext}`;
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
  const mix = $("mix");
  mix.addEventListener("input", () => { $("mix-value").textContent = `${mix.value}%`; });
  for (const id of ["strength", "preserve", "stroke-scale", "mix", "mix-style"]) {
    $(id).addEventListener("change", () => { if (state.hasResult) stylize(); });
  }
  $("stylize").addEventListener("click", stylize);
}

wireDrop();
wireControls();
loadModels();
