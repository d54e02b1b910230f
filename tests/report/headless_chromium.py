"""A real headless Chromium driven over the DevTools protocol (``--remote-debugging-pipe``).

No test library in between: the browser reads JSON commands on fd 3 and writes replies and
events on fd 4, each message ended by a NUL byte. Enough of the protocol to open a page, read
values from it, press keys, move the mouse, take a screenshot and print a PDF.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time

import pytest

INSTALL_HINT = ("Chromium is needed for the report's browser tests: install it with "
                "`bash scripts/install.sh --test` (Debian's chromium package), or set "
                "YCNG_CHROMIUM to a Chromium or Chrome binary.")
# Collects every uncaught error and console.error of the page, from before its first script.
_ERROR_TRAP = """window.__errors = [];
window.addEventListener("error", function (e) { window.__errors.push(String(e.message)); });
(function () { var error = console.error; console.error = function () {
  window.__errors.push(Array.prototype.join.call(arguments, " ")); error.apply(console, arguments);
}; })();"""


def chromium_binary() -> str:
  """The browser to test with; a missing one fails the test (never skips it)."""
  candidates = [os.environ.get("YCNG_CHROMIUM", ""), "chromium", "chromium-browser",
                "google-chrome"]
  for name in candidates:
    path = shutil.which(name) if name else None
    if path:
      return path
  pytest.fail(INSTALL_HINT)


def _above_10(fd: int) -> int:
  high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
  os.close(fd)
  return high


class Browser:
  """``with Browser() as b: b.open(url); b.evaluate("1 + 1")``."""

  def __init__(self, width: int = 1280, height: int = 900, timeout: float = 30.0):
    self.timeout = timeout
    binary = chromium_binary()
    self._profile = tempfile.TemporaryDirectory(prefix="ycng-chromium-")
    to_browser_r, self._to_browser = os.pipe()
    self._from_browser, from_browser_w = os.pipe()
    # Above fd 10, so moving them to 3 and 4 in the child cannot overwrite one with the other.
    to_browser_r, from_browser_w = (_above_10(fd) for fd in (to_browser_r, from_browser_w))
    args = [binary, "--headless", "--no-sandbox", "--disable-gpu",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--hide-scrollbars", "--remote-debugging-pipe", f"--window-size={width},{height}",
            f"--user-data-dir={self._profile.name}", "about:blank"]
    # The protocol pipes must be the browser's fds 3 and 4: a shell moves them there.
    script = (f'exec "$@" 3<&{to_browser_r} 4>&{from_browser_w} '
              f'{to_browser_r}<&- {from_browser_w}>&-')
    self.process = subprocess.Popen(["bash", "-c", script, "chromium", *args],
                                    pass_fds=(to_browser_r, from_browser_w),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(to_browser_r)
    os.close(from_browser_w)
    self._buffer, self._next_id, self.events = b"", 0, []
    self.session = None

  def __enter__(self):
    target = self.call("Target.createTarget", url="about:blank", browser=True)["targetId"]
    self.session = self.call("Target.attachToTarget", targetId=target, flatten=True,
                             browser=True)["sessionId"]
    for domain in ("Page", "Runtime"):
      self.call(f"{domain}.enable")
    self.call("Page.addScriptToEvaluateOnNewDocument", source=_ERROR_TRAP)
    return self

  def __exit__(self, *exc):
    try:
      self.call("Browser.close", browser=True)
    except (OSError, RuntimeError, TimeoutError):
      pass
    try:
      self.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
      self.process.kill()
      self.process.wait()
    os.close(self._to_browser)
    os.close(self._from_browser)
    self._profile.cleanup()

  def _read_message(self, deadline: float) -> dict:
    while b"\0" not in self._buffer:
      left = deadline - time.monotonic()
      if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
        raise TimeoutError("no answer from Chromium in time")
      chunk = os.read(self._from_browser, 1 << 20)
      if not chunk:
        raise RuntimeError(f"Chromium exited (status {self.process.poll()})")
      self._buffer += chunk
    message, self._buffer = self._buffer.split(b"\0", 1)
    return json.loads(message)

  def call(self, method: str, browser: bool = False, **params) -> dict:
    """Send a command (to the page's session unless ``browser``) and wait for its reply."""
    self._next_id += 1
    message = {"id": self._next_id, "method": method, "params": params}
    if self.session and not browser:
      message["sessionId"] = self.session
    os.write(self._to_browser, json.dumps(message).encode() + b"\0")
    deadline = time.monotonic() + self.timeout
    while True:
      reply = self._read_message(deadline)
      if reply.get("id") == self._next_id:
        if "error" in reply:
          raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})
      self.events.append(reply)

  def wait_for_event(self, method: str) -> dict:
    deadline = time.monotonic() + self.timeout
    while True:
      for i, event in enumerate(self.events):
        if event.get("method") == method:
          return self.events.pop(i)
      self.events.append(self._read_message(deadline))

  def open(self, url: str) -> None:
    self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
    self.call("Page.navigate", url=url)
    self.wait_for_event("Page.loadEventFired")

  def evaluate(self, expression: str):
    result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                       awaitPromise=True)
    if "exceptionDetails" in result:
      raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
    return result["result"].get("value")

  def errors(self) -> list[str]:
    """The page's uncaught errors and console errors, and the exceptions DevTools saw."""
    thrown = [e["params"]["exceptionDetails"].get("text", "") for e in self.events
              if e.get("method") == "Runtime.exceptionThrown"]
    return list(self.evaluate("window.__errors") or []) + thrown

  def press(self, key: str, code: str, key_code: int, text: str = "", shift: bool = False):
    """A real key press (keyDown then keyUp), as the keyboard would send it."""
    common = {"key": key, "code": code, "windowsVirtualKeyCode": key_code,
              "modifiers": 8 if shift else 0}
    self.call("Input.dispatchKeyEvent", type="keyDown", text=text, **common)
    self.call("Input.dispatchKeyEvent", type="keyUp", **common)

  def move_mouse(self, x: float, y: float) -> None:
    self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)

  def screenshot(self) -> bytes:
    return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

  def print_pdf(self) -> bytes:
    return base64.b64decode(self.call("Page.printToPDF", preferCSSPageSize=True,
                                      printBackground=True)["data"])
