// The page's worker: the wasm module (pkg/, scripts/build-web.sh) and its one Classifier live
// here, off the page's main thread, so decoding a large image or extracting features never
// freezes the page. Messages `{id, op, args}` are handled one at a time, in order (a wasm object
// serves one call at a time); each is answered `{id, value}` or `{id, error}`.
import init, { Classifier } from "./pkg/bnn_transfer.js";

let classifier = null;
const describe = (c) => ({ device: c.device(), note: c.device_note() ?? "", classes: c.classes() });

const ops = {
  // A failed create keeps the previous classifier.
  async create(model, modelName, head, headName, device) {
    const next = await Classifier.create(model, modelName, head, headName, device);
    if (classifier) classifier.free();
    classifier = next;
    return describe(classifier);
  },
  classify: (image, k) => classifier.classify(image, k),
  add_example: (name, image) => classifier.add_example(name, image),
  clear_examples: () => classifier.clear_examples(),
  train(seed) {
    const report = classifier.train(seed);
    return { report, head: classifier.head_file(), ...describe(classifier) };
  },
};

let queue = init();
onmessage = ({ data: { id, op, args } }) => {
  queue = queue.then(async () => {
    try {
      if (op !== "create" && !classifier) throw new Error("no model is open yet");
      postMessage({ id, value: await ops[op](...args) });
    } catch (e) {
      postMessage({ id, error: (e && e.message) || String(e) });
    }
  }, (e) => postMessage({ id, error: `the page's module did not load (${(e && e.message) || e}): run scripts/build-web.sh` }));
};
