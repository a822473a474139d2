// The page's glue: loads the wasm module built by scripts/build-web.sh (pkg/), opens a
// Classifier (src/web.rs) and labels the images the user picks or drops.
import init, { Classifier } from "./pkg/bnn_transfer.js";

const $ = (id) => document.getElementById(id);
let classifier = null;

async function bytesOf(input) {
  const f = input.files[0];
  return f ? new Uint8Array(await f.arrayBuffer()) : new Uint8Array();
}

async function load() {
  const device = $("device").value;
  $("status").textContent = "opening the extractor…";
  try {
    if (classifier) classifier.free();
    classifier = await Classifier.create(await bytesOf($("model")), await bytesOf($("head")), device);
    $("status").textContent = `ready on ${classifier.device()}; classes: ${classifier.classes().join(", ")}`;
  } catch (e) {
    classifier = null;
    $("status").textContent = `could not open: ${e.message ?? e}` +
      (device === "gpu" && !navigator.gpu ? " (this browser has no WebGPU: choose CPU)" : "");
  }
}

async function classify(files) {
  if (!classifier) return;
  for (const f of files) {
    const bytes = new Uint8Array(await f.arrayBuffer());
    const row = document.createElement("div");
    row.className = "row";
    const img = document.createElement("img");
    img.src = URL.createObjectURL(f);
    const text = document.createElement("span");
    row.append(img, text);
    $("results").prepend(row);
    try {
      const r = JSON.parse(await classifier.classify(bytes, 3));
      text.innerHTML = `<b>${f.name}</b>: ` + r.labels
        .map((l) => `${l.class} ${(100 * l.probability).toFixed(1)}%`).join(", ") +
        ` <span class="mono">(${r.ms.toFixed(1)} ms)</span>`;
    } catch (e) {
      text.textContent = `${f.name}: ${e.message ?? e}`;
    }
  }
}

await init();
if (!navigator.gpu) $("device").value = "cpu";
$("load").onclick = load;
$("images").onchange = (e) => classify(e.target.files);
const drop = $("drop");
drop.ondragover = (e) => { e.preventDefault(); drop.classList.add("over"); };
drop.ondragleave = () => drop.classList.remove("over");
drop.ondrop = (e) => { e.preventDefault(); drop.classList.remove("over"); classify(e.dataTransfer.files); };
await load();
