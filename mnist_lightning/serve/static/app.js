"use strict";
// Draw on #pad with Pointer Events; the drawing is sent to POST /predict as a PNG while drawing (debounced)
// and when a stroke ends. Responses that arrive after a newer request was sent are ignored. When the server
// collects corrections (GET /info says where), "Wrong? It is a [0-9]" sends the canvas (or the image file that was
// chosen or dropped) to POST /corrections.
(() => {
  const pad = document.getElementById("pad");
  const ctx = pad.getContext("2d");
  const seen = document.getElementById("seen").getContext("2d");
  const statusLine = document.getElementById("status");
  const labelOut = document.getElementById("label");
  const bars = document.getElementById("bars");
  const correct = document.getElementById("correct");
  const savedLine = document.getElementById("saved");
  const digitButtons = [...correct.querySelectorAll("button[data-digit]")];
  const TOP = 5;
  const DEBOUNCE_MS = 150;
  let drawing = false;
  let last = null;
  let timer = null;
  let sent = 0;
  let inked = false;
  let saved = false; // this drawing was saved as a correction: once is enough
  let misread = null; // the image file chosen or dropped, while the prediction shown is of it

  function reset() {
    saved = false;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, pad.width, pad.height);
    inked = false;
  }

  function point(event) {
    const box = pad.getBoundingClientRect();
    return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
  }

  function stroke(from, to) {
    ctx.strokeStyle = "#000";
    ctx.lineWidth = 18;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(...from);
    ctx.lineTo(...to);
    ctx.stroke();
    inked = true;
  }

  function schedule(delay) {
    clearTimeout(timer);
    timer = setTimeout(() => pad.toBlob((blob) => send(blob, "image/png"), "image/png"), delay);
  }

  async function send(body, contentType) {
    const id = ++sent;
    statusLine.classList.remove("error");
    statusLine.textContent = "Reading…";
    const headers = contentType ? { "Content-Type": contentType } : {};
    try {
      const response = await fetch("predict", { method: "POST", body, headers });
      const data = await response.json();
      if (id !== sent) return;
      if (!response.ok) throw new Error(data.error || response.statusText);
      show(data);
    } catch (err) {
      if (id !== sent) return;
      offerCorrections(false);
      statusLine.classList.add("error");
      statusLine.textContent = `Could not read a digit: ${err.message}`;
    }
  }

  function offerCorrections(on) {
    digitButtons.forEach((button) => { button.disabled = !on || saved; });
  }

  function saidSaved(text, isError) {
    savedLine.classList.toggle("error", isError);
    savedLine.textContent = text;
  }

  async function sendCorrection(digit) {
    offerCorrections(false);
    saidSaved("Saving…", false);
    const form = new FormData();
    form.append("label", digit);
    if (misread) {  // a chosen or dropped file: the file that was misread, not the canvas's rendering of it
      form.append("image", misread, misread.name || "image");
    } else {
      form.append("image", await new Promise((resolve) => pad.toBlob(resolve, "image/png")), "drawing.png");
    }
    try {
      const response = await fetch("corrections", { method: "POST", body: form });
      const data = await response.json();
      if (!response.ok) throw new Error(data.error || response.statusText);
      saved = true;
      offerCorrections(false);
      saidSaved(`Saved as ${article(data.label)} ${data.label} (${data.files} ${data.files === 1 ? "correction" : "corrections"} in the folder, all digits).`, false);
    } catch (err) {
      saidSaved(`Not saved: ${err.message}`, true);
      offerCorrections(true);
    }
  }

  function article(digit) {  // "an 8", "a 7"
    return Number(digit) === 8 ? "an" : "a";
  }

  async function showCollecting() {
    const line = document.getElementById("collecting");
    try {
      const info = await (await fetch("info")).json();
      document.getElementById("model").textContent = `Model: ${info.model.summary}`;
      const collect = info.collect;
      correct.hidden = !collect;
      line.textContent = collect
        ? `Corrections are saved on the server, in its folder ${collect.folder}/ (at most ${collect.max_files} files).`
        : "Corrections are off: start the server with --collect DIR to save the drawings it misreads.";
    } catch (err) {
      line.textContent = "";
    }
  }

  function show(data) {
    offerCorrections(true);
    const ranked = data.probabilities.map((p, digit) => ({ digit, p })).sort((a, b) => b.p - a.p).slice(0, TOP);
    statusLine.classList.toggle("unsure", data.unsure);
    statusLine.classList.toggle("not-a-digit", data.not_a_digit);
    labelOut.textContent = data.not_a_digit ? "?" : String(data.label);
    statusLine.textContent = data.not_a_digit
      ? "That does not look like a digit."
      : data.unsure
      ? `Not sure: ${data.label} or ${data.runner_up}.`
      : `It looks like ${article(data.label)} ${data.label} (${(ranked[0].p * 100).toFixed(1)}%).`;
    bars.replaceChildren(...ranked.map(({ digit, p }) => {
      const item = document.createElement("li");
      const percent = `${(p * 100).toFixed(1)}%`;
      item.setAttribute("aria-label", `${digit}: ${percent}`);
      item.dataset.digit = digit;
      item.innerHTML = `<span class="digit">${digit}</span><span class="track"><span class="fill"></span></span>` +
        `<span class="value">${percent}</span>`;
      item.querySelector(".fill").style.width = `${Math.max(p * 100, 0.5)}%`;
      return item;
    }));
    const pixels = seen.createImageData(28, 28);
    data.input.flat().forEach((value, i) => {
      const v = Math.round(value * 255);
      pixels.data.set([v, v, v, 255], i * 4);
    });
    seen.putImageData(pixels, 0, 0);
  }

  function clearAll() {
    misread = null;
    clearTimeout(timer);
    sent++;
    reset();
    labelOut.textContent = "";
    bars.replaceChildren();
    seen.clearRect(0, 0, 28, 28);
    offerCorrections(false);
    saidSaved("", false);
    statusLine.classList.remove("error");
    statusLine.textContent = "Waiting for a digit.";
  }

  function showFile(file) {
    if (!file) return;
    misread = file;
    saved = false;
    saidSaved("", false);
    const form = new FormData();
    form.append("image", file, file.name || "image");
    send(form, null);
    const url = URL.createObjectURL(file);
    const image = new Image();
    image.onload = () => {
      reset();
      const scale = Math.min(pad.width / image.width, pad.height / image.height);
      const w = image.width * scale;
      const h = image.height * scale;
      ctx.drawImage(image, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
      URL.revokeObjectURL(url);
    };
    image.onerror = () => URL.revokeObjectURL(url);
    image.src = url;
  }

  pad.addEventListener("pointerdown", (event) => {
    misread = null;  // drawn on: the canvas is what is read now
    if (saved) {
      saved = false;
      saidSaved("", false);
    }
    drawing = true;
    last = point(event);
    pad.setPointerCapture(event.pointerId);
    stroke(last, last);
  });
  pad.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const next = point(event);
    stroke(last, next);
    last = next;
    schedule(DEBOUNCE_MS);
  });
  const end = () => {
    if (!drawing) return;
    drawing = false;
    if (inked) schedule(0);
  };
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);
  pad.addEventListener("keydown", (event) => {
    if (event.key === "Escape" || event.key === "Delete" || event.key === "Backspace") clearAll();
  });
  document.getElementById("clear").addEventListener("click", clearAll);
  digitButtons.forEach((button) => button.addEventListener("click", () => sendCorrection(button.dataset.digit)));
  document.getElementById("file").addEventListener("change", (event) => showFile(event.target.files[0]));
  pad.addEventListener("dragover", (event) => {
    event.preventDefault();
    pad.classList.add("dragging");
  });
  pad.addEventListener("dragleave", () => pad.classList.remove("dragging"));
  pad.addEventListener("drop", (event) => {
    event.preventDefault();
    pad.classList.remove("dragging");
    showFile(event.dataTransfer.files[0]);
  });
  reset();
  showCollecting();
})();
