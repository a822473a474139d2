#!/usr/bin/env python3
"""End-to-end check of the web page (web/index.html) in headless Chromium through chromedriver's
WebDriver HTTP API (no Python packages needed), driving only the page's own controls:

1. serves web/ (after scripts/build-web.sh), opens the page, waits for it to load on WebGPU;
2. a head file whose class name is markup (`<img src=x onerror=...>`) is loaded: the name must
   show as text and no script may run; an empty file and a file that is not a model must fail
   with an error naming the file while the previous model stays in use;
3. builds C classes of generated images (colours and textures) through the class-name box and the
   file picker, trains, and reads the held-out top-1 the page shows;
4. labels fresh images in the page, downloads the trained head through the page's link, and runs
   `bnn predict` ($BNN, else $CARGO_TARGET_DIR/release/bnn, else target/release/bnn) on the same images with that head: the labels must
   be the same.

Prints one line `page-train: C classes, N images, held-out top-1 X%, native agrees: yes|no`
(a check outside the project reads it) and the seconds the training flow took."""
import base64, http.server, json, os, random, socketserver, struct, subprocess, sys, tempfile
import threading, time, urllib.request, zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
WEB = os.path.join(ROOT, "web")
BNN = os.environ.get("BNN", os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "bnn"))
CLASSES, PER_CLASS, FRESH = 8, 20, 2  # per class: images to train on (every 5th held out), fresh ones to label


def png(path, pixel):
    """A 64×64 RGB PNG whose pixel (x, y) is pixel(x, y)."""
    raw = b"".join(b"\0" + bytes(c for x in range(64) for c in pixel(x, y)) for y in range(64))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


PALETTE = [(220, 40, 40), (40, 160, 40), (40, 60, 210), (230, 200, 30),
           (150, 50, 170), (30, 180, 190), (240, 130, 20), (120, 120, 120)]


def sample(path, k, rng):
    """Class k: its own colour on a dark background, in one of four textures (by k), with a random
    phase, period and brightness, so no two images are alike."""
    c = [min(255, max(0, int(v * rng.uniform(0.7, 1.2)))) for v in PALETTE[k]]
    bg = tuple(rng.randint(0, 60) for _ in range(3))
    p, ox, oy = rng.randint(5, 10), rng.randint(0, 20), rng.randint(0, 20)
    kind = k % 4
    def on(x, y):
        if kind == 0:
            return ((y + oy) // p) % 2 == 0
        if kind == 1:
            return ((x + ox) // p + (y + oy) // p) % 2 == 0
        if kind == 2:
            return (x - 22 - ox) ** 2 + (y - 22 - oy) ** 2 < (3 * p) ** 2
        return ((x + ox) // p) % 2 == 0
    return png(path, lambda x, y: tuple(c) if on(x, y) else bg)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k):
        super().__init__(*a, directory=WEB, **k)
    def log_message(self, *a):
        pass
    def guess_type(self, path):
        return "application/wasm" if str(path).endswith(".wasm") else super().guess_type(path)


def big_png(path, side):
    """A side×side RGB PNG of horizontal bands (cheap to make, slow to decode)."""
    rows = [b"\0" + bytes((y % 256, 90, 160)) * side for y in range(side)]
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(b"".join(rows), 1)) + chunk(b"IEND", b""))
    return path


def markup_head(tmp):
    """The shipped shapes head with its first class renamed to markup that would run script."""
    raw = open(os.path.join(ROOT, "assets", "shapes-head.safetensors"), "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    info = json.loads(header["__metadata__"]["info"])
    info["classes"][0] = "<img src=x onerror=\"window.pwned=1\">"
    header["__metadata__"]["info"] = json.dumps(info)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path = os.path.join(tmp, "markup-head.safetensors")
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + raw[8 + n:])
    return path


def main():
    tmp = tempfile.mkdtemp()
    rng = random.Random(0)
    train = {f"colour-{k}": [sample(f"{tmp}/c{k}-{i}.png", k, rng) for i in range(PER_CLASS)]
             for k in range(CLASSES)}
    fresh = [(f"colour-{k}", sample(f"{tmp}/fresh{k}-{i}.png", k, rng))
             for k in range(CLASSES) for i in range(FRESH)]
    empty = os.path.join(tmp, "empty.safetensors")
    open(empty, "wb").close()
    photo = sample(os.path.join(tmp, "holiday.png"), 0, rng)

    httpd = socketserver.TCPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    page = f"http://127.0.0.1:{httpd.server_address[1]}/"
    driver = subprocess.Popen([os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"), "--port=9515"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def call(method, path, body=None):
        req = urllib.request.Request("http://127.0.0.1:9515" + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.load(r)["value"]
    try:
        for _ in range(50):
            try:
                call("GET", "/status")
                break
            except Exception:
                time.sleep(0.2)
        caps = json.load(open(os.path.join(ROOT, "webdriver.json")))
        sid = call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]
        s = f"/session/{sid}"
        js = lambda code, *args: call("POST", s + "/execute/sync", {"script": code, "args": list(args)})
        text = lambda id: js(f"return document.getElementById('{id}').textContent")

        def element(css):
            return list(call("POST", s + "/element", {"using": "css selector", "value": css}).values())[0]

        def pick(css, paths):
            call("POST", f"{s}/element/{element(css)}/value", {"text": "\n".join(os.path.abspath(p) for p in paths)})

        def click(css):
            call("POST", f"{s}/element/{element(css)}/click", {})

        def wait(what, ok, seconds=300):
            for _ in range(int(seconds / 0.1)):
                v = what()
                if ok(v):
                    return v
                time.sleep(0.1)
            raise AssertionError(f"timed out; last: {v!r}")

        call("POST", s + "/url", {"url": page})
        status = wait(lambda: text("status"), lambda t: t.startswith(("ready", "could not")))
        print("status:", status)
        # "Fastest here": headless Chromium's WebGPU adapter is SwiftShader, a CPU, so the page
        # must have chosen the CPU path and said why; WebGPU itself is the next check.
        assert status.startswith("ready on the CPU binary path") and "is a CPU" in status, status
        js("const d = document.getElementById('device'); d.value = 'gpu'; d.dispatchEvent(new Event('change'))")
        status = wait(lambda: text("status"), lambda t: t.startswith(("ready", "could not")) and "CPU binary" not in t)
        print("status:", status)
        assert status.startswith("ready on") and "CPU" not in status.split(";")[0], status
        js("const d = document.getElementById('device'); d.value = 'auto'; d.dispatchEvent(new Event('change'))")
        wait(lambda: text("status"), lambda t: t.startswith("ready on the CPU"))

        # A phone's window: nothing wider than the screen.
        call("POST", s + "/window/rect", {"width": 390, "height": 844})
        widths = js("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"the page is {widths[0]} px wide in a {widths[1]} px window"
        print(f"phone width: the page fits ({widths[0]} <= {widths[1]} px)")

        # A 4000×4000 PNG is decoded in the worker: the page's main thread keeps running (the
        # longest gap between 10 ms timer ticks while it is labelled).
        big = big_png(os.path.join(tmp, "big.png"), 4000)
        js("window.gaps = []; let last = performance.now(); window.ticker = setInterval(() => {"
           " const now = performance.now(); window.gaps.push(now - last); last = now; }, 10)")
        pick("#images", [big])
        wait(lambda: js("return [...document.querySelectorAll('#results .row > span')].map(e => e.textContent)"),
             lambda r: len(r) == 1 and "ms)" in r[0])
        gap = js("clearInterval(window.ticker); return Math.max(...window.gaps)")
        print(f"4000×4000 PNG labelled; the main thread's longest pause meanwhile: {gap:.0f} ms")
        assert gap < 250, f"the page froze for {gap:.0f} ms while decoding a large image"
        js("document.getElementById('results').replaceChildren()")

        # 2. Markup in a head file is text; bad files fail and keep the model.
        pick("#head", [markup_head(tmp)])
        click("#load")
        status = wait(lambda: text("status"), lambda t: t.startswith(("ready", "could not")) and "<img" in t)
        pick("#images", [photo])
        row = wait(lambda: js("return [...document.querySelectorAll('#results .row > span')].map(e => e.textContent)"),
                   lambda r: len(r) == 1 and "ms)" in r[0])[0]
        injected = js("return [window.pwned === undefined, document.querySelectorAll('#status img, #results span img').length]")
        assert injected == [True, 0], injected
        print("markup head: shown as text, no script ran")
        for bad, name in [(empty, "empty.safetensors"), (photo, "holiday.png")]:
            pick("#head", [bad])
            click("#load")
            status = wait(lambda: text("status"), lambda t: t.startswith("could not"))
            assert name in status and "still using" in status, status
            assert name != "holiday.png" or "not a head file" in status, status
            print(f"bad head file {name}: {status[:110]}…")
        js("document.getElementById('head').value = ''")
        click("#load")
        status = wait(lambda: text("status"), lambda t: t.startswith("ready"))

        # The camera (Chromium's fake device): a frame joins a class, and live labels run.
        click("#camera-start")
        wait(lambda: js("return document.getElementById('camera').hidden"), lambda h: h is False, 30)
        call("POST", f"{s}/element/{element('#class-name')}/value", {"text": "camera"})
        click("#snap-class")
        wait(lambda: js("return document.getElementById('counts').textContent"), lambda t: "camera: 1 image" in t, 30)
        click("#live")
        live = wait(lambda: text("live-label"), lambda t: "ms)" in t, 30)
        click("#camera-stop")
        click("#clear")
        print(f"camera: a frame added to a class; live label: {live}")

        # Load pressed while images are being labelled: both finish, in order, without errors.
        assert "(102 classes)" in status, status
        js("document.getElementById('results').replaceChildren()")
        pick("#images", [p for _, p in fresh[:8]])
        click("#load")
        rows = wait(lambda: js("return [...document.querySelectorAll('#results .row > span')].map(e => e.textContent)"),
                    lambda r: len(r) == 8 and all("ms)" in x for x in r) and text("status").startswith("ready"))
        print("Load while labelling: 8 images labelled, model reloaded, no error")
        js("document.getElementById('results').replaceChildren()")

        # 3. Train on C classes through the page's controls (the last class dropped on the section).
        start = time.time()
        name = element("#class-name")
        for k, (cls, paths) in enumerate(train.items()):
            call("POST", f"{s}/element/{name}/clear", {})
            call("POST", f"{s}/element/{name}/value", {"text": cls})
            if k < CLASSES - 1:
                pick("#class-images", paths)
            else:
                files = [base64.b64encode(open(p, "rb").read()).decode() for p in paths]
                js("const dt = new DataTransfer(); for (const [i, b] of arguments[0].entries()) {"
                   " dt.items.add(new File([Uint8Array.from(atob(b), c => c.charCodeAt(0))], `drop${i}.png`,"
                   " {type: 'image/png'})); }"
                   " document.getElementById('classes').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true}))",
                   files)
            wait(lambda: js("return document.getElementById('counts').textContent"),
                 lambda t: f"{cls}: {PER_CLASS} images" in t)
        click("#train")
        trained = wait(lambda: text("train-status"), lambda t: t.startswith(("trained", "could not")))
        seconds = time.time() - start
        print(trained)
        assert trained.startswith("trained"), trained
        top1 = float(trained.split("held-out top-1 ")[1].split("%")[0])

        # 4. Label fresh images in the page and natively with the downloaded head.
        js("document.getElementById('results').replaceChildren()")
        pick("#images", [p for _, p in fresh])
        rows = wait(lambda: js("return [...document.querySelectorAll('#results .row > span')].map(e => e.textContent)"),
                    lambda r: len(r) == len(fresh) and all("ms)" in x or ": " in x for x in r))
        page_labels = {r.split(": ")[0]: r.split(": ")[1].split(" ")[0] for r in rows}
        head_b64 = call("POST", s + "/execute/async", {"script": """
            const done = arguments[arguments.length - 1];
            fetch(document.getElementById('download').href).then(r => r.arrayBuffer()).then(b => {
              let s = ''; for (const x of new Uint8Array(b)) s += String.fromCharCode(x); done(btoa(s)); });
        """, "args": []})
        head = os.path.join(tmp, "page-head.safetensors")
        open(head, "wb").write(base64.b64decode(head_b64))
        native = json.loads(subprocess.run([BNN, "predict", "--head", head, "--json", "--cpu", "--top", "1"]
                                           + [p for _, p in fresh], check=True, capture_output=True).stdout)
        native_labels = {os.path.basename(r["image"]): r["labels"][0]["class"] for r in native}
        agree = page_labels == native_labels
        call("DELETE", s)
        n = CLASSES * PER_CLASS
        print(f"page-train: {CLASSES} classes, {n} images, held-out top-1 {top1:.1f}%, "
              f"native agrees: {'yes' if agree else 'no'}")
        print(f"adding {n} images and training took {seconds:.1f} s in the page")
        assert agree, (page_labels, native_labels)
        assert top1 >= 2 * 100 / CLASSES, f"held-out top-1 {top1}% is not well above chance"
        print("page ok")
    finally:
        driver.terminate()
        httpd.shutdown()


main()
