#!/usr/bin/env python3
"""End-to-end check of the web page (web/index.html) in headless Chromium through chromedriver's
WebDriver HTTP API (no Python packages needed): serves web/ (after scripts/build-web.sh), opens
the page, waits for the classifier to load on WebGPU, picks generated PNG images through the file
input, and checks that each gets three labels and a time. Prints the page's lines."""
import http.server, json, os, socketserver, subprocess, sys, threading, time, urllib.request

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
WEB = os.path.join(ROOT, "web")
import struct, tempfile, zlib

def png(path, pixel):
    """A 64×64 RGB PNG whose pixel (x, y) is pixel(x, y)."""
    raw = b"".join(b"\0" + bytes(c for x in range(64) for c in pixel(x, y)) for y in range(64))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path

IMAGES = sys.argv[1:]  # PNG/JPEG files to pick; default: three generated ones
if not IMAGES:
    tmp = tempfile.mkdtemp()
    IMAGES = [
        png(f"{tmp}/checker.png", lambda x, y: (230, 40, 40) if (x // 8 + y // 8) % 2 else (20, 20, 90)),
        png(f"{tmp}/stripes.png", lambda x, y: (250, 250, 250) if (y // 6) % 2 else (10, 120, 10)),
        png(f"{tmp}/disc.png", lambda x, y: (240, 200, 0) if (x - 32) ** 2 + (y - 30) ** 2 < 300 else (30, 60, 160)),
    ]

class Quiet(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k):
        super().__init__(*a, directory=WEB, **k)
    def log_message(self, *a):
        pass
    def guess_type(self, path):
        return "application/wasm" if str(path).endswith(".wasm") else super().guess_type(path)

httpd = socketserver.TCPServer(("127.0.0.1", 0), Quiet)
threading.Thread(target=httpd.serve_forever, daemon=True).start()
page = f"http://127.0.0.1:{httpd.server_address[1]}/"

driver = subprocess.Popen([os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"), "--port=9515"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def call(method, path, body=None):
    req = urllib.request.Request("http://127.0.0.1:9515" + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)["value"]
try:
    for _ in range(50):
        try:
            call("GET", "/status"); break
        except Exception:
            time.sleep(0.2)
    caps = json.load(open(os.path.join(ROOT, "webdriver.json")))
    sid = call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]
    s = f"/session/{sid}"
    js = lambda code: call("POST", s + "/execute/sync", {"script": code, "args": []})
    call("POST", s + "/url", {"url": page})
    status = ""
    for _ in range(300):
        status = js("return document.getElementById('status').textContent")
        if status.startswith(("ready", "could not")):
            break
        time.sleep(0.2)
    print("status:", status)
    assert status.startswith("ready on") and "CPU" not in status.split(";")[0], status
    el = call("POST", s + "/element", {"using": "css selector", "value": "#images"})
    el = list(el.values())[0]
    call("POST", f"{s}/element/{el}/value", {"text": "\n".join(os.path.abspath(p) for p in IMAGES)})
    rows = []
    for _ in range(300):
        rows = js("return [...document.querySelectorAll('#results .row > span')].map(e => e.textContent)")
        if len(rows) == len(IMAGES) and all("ms)" in r or "could not" in r for r in rows):
            break
        time.sleep(0.2)
    for r in rows:
        print(r)
    assert len(rows) == len(IMAGES) and all(r.count("%") == 3 and "ms)" in r for r in rows), rows
    call("DELETE", s)
    print("page ok")
finally:
    driver.terminate()
    httpd.shutdown()
