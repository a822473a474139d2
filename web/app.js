// The page's glue: the wasm module (built by scripts/build-web.sh into pkg/) runs in a worker
// (worker.js) that holds one Classifier (src/web.rs), so decoding and extraction never block the
// page. This file collects labelled images and asks the worker to train a head with the library's
// own trainer, and labels the images the user picks, drops or photographs. Every request goes
// through one queue (`serial`), so the page's state changes in order. Text from files (names,
// class names) is only ever set as text, never parsed as HTML.

const $ = (id) => document.getElementById(id);
const MAX_RESULTS = 50; // rows kept in "Label images" (their thumbnails are freed)

let queue = Promise.resolve();
function serial(work) {
  const run = queue.then(work);
  queue = run.catch(() => {});
  return run;
}

function say(id, text, error = false) {
  $(id).textContent = text;
  $(id).className = error ? "error" : "status";
}
const message = (e) => (e && e.message) || String(e);

const worker = new Worker("worker.js", { type: "module" });
const pending = new Map();
let nextId = 0;
worker.onmessage = ({ data: { id, value, error } }) => {
  const { ok, fail } = pending.get(id);
  pending.delete(id);
  if (error === undefined) ok(value); else fail(new Error(error));
};
worker.onerror = (e) => {
  say("status", `The page's module did not load (${e.message || "worker error"}): run scripts/build-web.sh to build web/pkg/, then reload.`, true);
};
// One request to the worker: `op` of worker.js with `args`.
function call(op, ...args) {
  return new Promise((ok, fail) => {
    const id = nextId++;
    pending.set(id, { ok, fail });
    worker.postMessage({ id, op, args });
  });
}

let classifier = null; // {device, note, classes} of the open model, as the worker reports it
const counts = new Map(); // class name → images added

async function fileBytes(input, what) {
  const f = input.files[0];
  if (!f) return [new Uint8Array(), ""];
  const bytes = new Uint8Array(await f.arrayBuffer());
  if (bytes.length === 0) throw new Error(`${f.name} is empty (0 bytes): choose the ${what} file itself`);
  return [bytes, f.name];
}

const classList = (names) =>
  names.slice(0, 5).join(", ") + (names.length > 5 ? `, … (${names.length} classes)` : "");
function describe(c, note) {
  return `ready on ${c.device}; classes: ${classList(c.classes)}` + (note ? ` — ${note}` : "");
}

// Opens the chosen files on the chosen device; on a WebGPU failure, the CPU path instead. The
// previous classifier stays in use until the new one is ready.
async function open() {
  const [model, modelName] = await fileBytes($("model"), "extractor");
  const [head, headName] = await fileBytes($("head"), "head");
  const device = $("device").value;
  let next, note = "";
  try {
    next = await call("create", model, modelName, head, headName, device);
  } catch (e) {
    if (device === "cpu") throw e;
    next = await call("create", model, modelName, head, headName, "cpu");
    $("device").value = "cpu";
    note = `WebGPU is not usable in this browser (${message(e).split("\n")[0]}), so the CPU path runs`;
  }
  note = note || next.note;
  classifier = next;
  counts.clear();
  renderCounts();
  $("download").hidden = true;
  say("status", describe(classifier, note));
}

const load = () => serial(async () => {
  say("status", "opening the extractor…");
  try {
    await open();
  } catch (e) {
    say("status", `could not open: ${message(e)}` +
      (classifier ? ` (still using ${classifier.device}, classes ${classList(classifier.classes)})` : ""), true);
  }
});

function renderCounts() {
  const list = $("counts");
  list.replaceChildren(...[...counts].map(([name, n]) => {
    const li = document.createElement("li");
    li.textContent = `${name}: ${n} image${n === 1 ? "" : "s"}`;
    return li;
  }));
}

async function pngOfFrame() {
  const video = $("video");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  const blob = await new Promise((ok) => canvas.toBlob(ok, "image/png"));
  return new File([blob], `camera-${Date.now()}.png`, { type: "image/png" });
}

function addExamples(files) {
  const name = $("class-name").value.trim();
  if (!name) {
    say("train-status", "Type a class name first, then add its images.", true);
    return Promise.resolve();
  }
  return Promise.all([...files].map((f) => serial(async () => {
    if (!classifier) return;
    try {
      const n = await call("add_example", name, new Uint8Array(await f.arrayBuffer()));
      counts.set(name, n);
      renderCounts();
      say("train-status", `added ${f.name} to ${name}`);
    } catch (e) {
      say("train-status", `${f.name}: ${message(e)}`, true);
    }
  })));
}

const train = () => serial(async () => {
  if (!classifier) return;
  say("train-status", "training…");
  await new Promise((ok) => setTimeout(ok, 0)); // let the line show
  try {
    const trained = await call("train", 0);
    const r = JSON.parse(trained.report);
    const heldout = r.heldout_top1 === null
      ? "no held-out images (add 5 or more per class to score it)"
      : `held-out top-1 ${(100 * r.heldout_top1).toFixed(1)}% on ${r.heldout_images} images`;
    say("train-status", `trained on ${r.train_images} images of ${r.classes} classes in ` +
      `${r.ms.toFixed(0)} ms (${r.epochs} epochs); ${heldout}. New images are labelled with it.`);
    const link = $("download");
    if (link.href) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(new Blob([trained.head], { type: "application/octet-stream" }));
    link.hidden = false;
    classifier = trained;
    say("status", describe(classifier));
  } catch (e) {
    say("train-status", `could not train: ${message(e)}`, true);
  }
});

function classify(files) {
  return Promise.all([...files].map((f) => serial(async () => {
    if (!classifier) return;
    const row = document.createElement("div");
    row.className = "row";
    const img = document.createElement("img");
    img.src = URL.createObjectURL(f);
    img.alt = "";
    const text = document.createElement("span");
    row.append(img, text);
    $("results").prepend(row);
    while ($("results").children.length > MAX_RESULTS) {
      const old = $("results").lastElementChild;
      URL.revokeObjectURL(old.querySelector("img").src);
      old.remove();
    }
    try {
      const r = JSON.parse(await call("classify", new Uint8Array(await f.arrayBuffer()), 3));
      text.textContent = `${f.name}: ` + r.labels
        .map((l) => `${l.class} ${(100 * l.probability).toFixed(1)}%`).join(", ") +
        ` (${r.ms.toFixed(1)} ms)`;
    } catch (e) {
      text.textContent = `${f.name}: ${message(e)}`;
    }
  })));
}

let stream = null;
async function cameraStart() {
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    $("video").srcObject = stream;
    await $("video").play();
    $("camera").hidden = false;
  } catch (e) {
    say("train-status", `no camera: ${message(e)}`, true);
  }
}
function cameraStop() {
  liveStop();
  if (stream) stream.getTracks().forEach((t) => t.stop());
  stream = null;
  $("camera").hidden = true;
}

// Live labels: the current frame labelled again as soon as the last one is done.
let live = false;
async function liveLoop() {
  while (live && stream) {
    const frame = await pngOfFrame();
    const bytes = new Uint8Array(await frame.arrayBuffer());
    try {
      const r = JSON.parse(await serial(() => call("classify", bytes, 3)));
      if (live) {
        say("live-label", r.labels.map((l) => `${l.class} ${(100 * l.probability).toFixed(1)}%`).join(", ") +
          ` (${r.ms.toFixed(1)} ms)`);
      }
    } catch (e) {
      say("live-label", message(e), true);
      liveStop();
    }
  }
}
function liveStop() {
  live = false;
  $("live").textContent = "Live labels";
}

$("load").onclick = load;
$("device").onchange = load;
$("class-images").onchange = (e) => addExamples([...e.target.files]).then(() => { e.target.value = ""; });
$("train").onclick = train;
$("clear").onclick = () => serial(async () => {
  if (classifier) await call("clear_examples");
  counts.clear();
  renderCounts();
  say("train-status", "");
});
$("images").onchange = (e) => classify([...e.target.files]).then(() => { e.target.value = ""; });
if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
  $("camera-start").hidden = false;
  $("camera-start").onclick = cameraStart;
  $("camera-stop").onclick = cameraStop;
  $("snap-class").onclick = async () => addExamples([await pngOfFrame()]);
  $("snap-label").onclick = async () => classify([await pngOfFrame()]);
  $("live").onclick = () => {
    if (live) return liveStop();
    live = true;
    $("live").textContent = "Stop live labels";
    liveLoop();
  };
}
// Images dropped on "Your classes" join the named class; dropped on "Label images", get labels.
for (const [zone, use] of [[$("drop"), classify], [$("classes"), addExamples]]) {
  zone.ondragover = (e) => { e.preventDefault(); zone.classList.add("over"); };
  zone.ondragleave = () => zone.classList.remove("over");
  zone.ondrop = (e) => { e.preventDefault(); zone.classList.remove("over"); use([...e.dataTransfer.files]); };
}
await load();
