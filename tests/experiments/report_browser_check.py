"""Opens an angiotrain report in headless Chromium (Debian's `chromium`) through the DevTools
protocol over a pipe, and checks what a reader would see: no console error or uncaught
exception, no failed load, every image decoded, every chart drawn (a canvas with pixels), every
link resolving (an anchor of the page, or a file beside it; nothing on the network). Saves a
screenshot of the page.

  report_browser_check.py PAGE.html SCREENSHOT.png [--min-charts N] [--min-images N] [--height H]

Prints a JSON summary; exits 1 listing every problem, 2 when Chromium cannot be started.
Standard library only (the system python3).
"""
import base64
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

CHROMIUM_NAMES = ["chromium", "chromium-browser", "google-chrome"]
TIMEOUT_S = 90

# Runs in the page after its load event.
INSPECT_PAGE = r"""
(() => {
  const drawn = [...document.querySelectorAll('canvas')].map(c => {
    if (!c.width || !c.height) return false;
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) return true;
    return false;
  });
  return JSON.stringify({
    title: document.title,
    canvases: drawn.length,
    charts_drawn: drawn.filter(x => x).length,
    charts_reported: document.body.getAttribute('data-charts-drawn'),
    images: [...document.images].map(i => ({src: i.getAttribute('src').slice(0, 40),
                                           ok: i.complete && i.naturalWidth > 0})),
    links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    height: document.documentElement.scrollHeight,
  });
})()
"""


class Browser:
    """Chromium with --remote-debugging-pipe: commands on its fd 3, replies and events on fd 4,
    JSON messages separated by NUL bytes."""

    def __init__(self, binary, profile):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()

        def wire_pipes():
            # Python's pipes are close-on-exec, and dup2 onto the same number keeps that flag:
            # move both out of the way first, then onto 3 and 4, inheritable.
            read_end = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            write_end = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(read_end, 3, inheritable=True)
            os.dup2(write_end, 4, inheritable=True)

        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
             "--user-data-dir=" + profile, "--remote-debugging-pipe", "about:blank"],
            preexec_fn=wire_pipes, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buffer = b""
        self.next_id = 0
        self.events = []

    def send(self, method, params=None, session=None):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
        return self.wait(lambda m: m.get("id") == self.next_id)

    def wait(self, predicate, timeout=TIMEOUT_S):
        for i, m in enumerate(self.events):
            if predicate(m):
                return self.events.pop(i)
        deadline = time.time() + timeout
        while time.time() < deadline:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                m = json.loads(raw)
                if predicate(m):
                    if "error" in m:
                        raise RuntimeError("DevTools error: %s" % m["error"])
                    return m
                self.events.append(m)
            chunk = os.read(self.from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe: %s" % self.proc.stderr.read().decode(errors="replace")[-2000:])
            self.buffer += chunk
        raise RuntimeError("no answer from Chromium in %d s" % timeout)

    def close(self):
        try:
            self.send("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def problems_from_events(events):
    out = []
    for m in events:
        method, p = m.get("method"), m.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            out.append("uncaught exception: %s" % d.get("exception", {}).get("description", d.get("text")))
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console.%s: %s" % (p["type"], " ".join(str(a.get("value", a.get("description"))) for a in p["args"])))
        elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
            out.append("browser log error: %s %s" % (p["entry"].get("text"), p["entry"].get("url", "")))
        elif method == "Network.loadingFailed":
            out.append("failed load: %s" % p.get("errorText"))
    return out


def check_links(page, links, ids):
    out = []
    folder = os.path.dirname(os.path.abspath(page))
    for href in links:
        parsed = urllib.parse.urlparse(href)
        if parsed.scheme in ("http", "https") or href.startswith("//"):
            out.append("link to the network (the page must stand alone): %s" % href)
        elif href.startswith("#"):
            if href[1:] not in ids:
                out.append("link to a missing anchor: %s" % href)
        elif parsed.scheme in ("", "file"):
            target = os.path.join(folder, urllib.parse.unquote(parsed.path))
            if not os.path.exists(target):
                out.append("link to a missing file: %s" % href)
    return out


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    page, screenshot = os.path.abspath(args[0]), args[1]
    options = dict(zip(args[2::2], args[3::2]))
    min_charts = int(options.get("--min-charts", 1))
    min_images = int(options.get("--min-images", 0))
    height = options.get("--height")
    binary = next((shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n)), None)
    if not binary:
        print("chromium not found on PATH: install Debian's chromium (scripts/install-deps.sh)", file=sys.stderr)
        sys.exit(2)
    profile = tempfile.mkdtemp(prefix="angiotrain-chromium-")
    browser = Browser(binary, profile)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["result"]["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["result"]["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            browser.send(domain + ".enable", session=session)
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": 1300, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)
        browser.send("Page.navigate", {"url": "file://" + urllib.parse.quote(page)}, session=session)
        browser.wait(lambda m: m.get("method") == "Page.loadEventFired")
        time.sleep(0.5)  # late console messages
        result = browser.send("Runtime.evaluate", {"expression": INSPECT_PAGE, "returnByValue": True}, session=session)
        info = json.loads(result["result"]["result"]["value"])
        shot_height = int(height) if height else min(info["height"], 12000)
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": 1300, "height": shot_height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        time.sleep(0.3)
        shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)["result"]["data"]
        with open(screenshot, "wb") as f:
            f.write(base64.b64decode(shot))
        # Drain what arrived meanwhile, then collect the problems.
        problems = problems_from_events(browser.events)
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)

    problems += ["image not decoded: %s..." % i["src"] for i in info["images"] if not i["ok"]]
    problems += check_links(page, info["links"], set(info["ids"]))
    if info["charts_drawn"] != info["canvases"]:
        problems.append("%d of %d charts drew nothing" % (info["canvases"] - info["charts_drawn"], info["canvases"]))
    if info["charts_drawn"] < min_charts:
        problems.append("%d charts drawn, expected at least %d" % (info["charts_drawn"], min_charts))
    if str(info["charts_reported"]) != str(info["canvases"]):
        problems.append("the page's script reported %s charts for %d canvases" % (info["charts_reported"], info["canvases"]))
    if len(info["images"]) < min_images:
        problems.append("%d images, expected at least %d" % (len(info["images"]), min_images))
    summary = {k: info[k] for k in ("title", "canvases", "charts_drawn", "height")}
    summary.update(images=len(info["images"]), links=len(info["links"]), screenshot=screenshot, problems=problems)
    print(json.dumps(summary, indent=1))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
