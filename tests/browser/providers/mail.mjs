// A real SMTP server for the tests: providers/smtp_sink.py (aiosmtpd) in a child
// process, keeping every message in a temporary folder.
//
//   const mail = await startSmtpSink();
//   // start the server with CAUCUS_SMTP_URL=mail.url
//   const message = await mail.waitForMail("ada@example.org", 10000);
//   // message.to, message.subject, message.text (decoded); await mail.stop();
//
// The Python interpreter: $CAUCUS_TEST_PYTHON, else <repo>/target/test-venv/bin/python
// (scripts/test makes that venv and installs aiosmtpd in it).

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "..", "..", "..");

export function testPython() {
  const python = process.env.CAUCUS_TEST_PYTHON || join(repo, "target", "test-venv", "bin", "python");
  if (!existsSync(python)) {
    throw new Error(`no Python with aiosmtpd at ${python}: run scripts/test once (it makes target/test-venv), `
      + "or set CAUCUS_TEST_PYTHON to a Python that has aiosmtpd");
  }
  return python;
}

/** Starts the sink. Resolves with `{ url, port, folder, messages, waitForMail, stop }`. */
export async function startSmtpSink() {
  const folder = mkdtempSync(join(tmpdir(), "caucus-mail-"));
  const child = spawn(testPython(), [join(here, "smtp_sink.py"), folder, "--port", "0"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise((done, fail) => {
    const timer = setTimeout(() => { child.kill("SIGKILL"); fail(new Error("the SMTP sink did not start within 20 s")); }, 20000);
    child.once("error", (error) => { clearTimeout(timer); fail(error); });
    child.once("exit", (code) => { clearTimeout(timer); fail(new Error(`the SMTP sink exited with ${code}`)); });
    createInterface({ input: child.stdout }).on("line", (line) => {
      const listening = line.match(/^listening on (\d+)/);
      if (listening) { clearTimeout(timer); done(Number(listening[1])); }
    });
  });

  /** Every message received so far, oldest first: `{ to: [..], from, subject, text, html }`. */
  const messages = () => readdirSync(folder)
    .filter((name) => name.endsWith(".json"))
    .sort()
    .map((name) => ({ file: join(folder, name), ...JSON.parse(readFileSync(join(folder, name), "utf8")) }));

  /**
   * Resolves with the first message to `to` (compared without case) that is not among
   * those already returned by an earlier waitForMail; rejects after `timeoutMs`.
   */
  const seen = new Set();
  async function waitForMail(to, timeoutMs = 10000) {
    const wanted = String(to).toLowerCase();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = messages().find((message) => !seen.has(message.file)
        && message.to.some((address) => address.toLowerCase() === wanted));
      if (found) { seen.add(found.file); return found; }
      if (Date.now() > deadline) {
        throw new Error(`no mail to ${to} within ${timeoutMs} ms (the sink has ${messages().length} message(s): `
          + `${messages().map((m) => m.to.join(",")).join("; ") || "none"})`);
      }
      await new Promise((wake) => setTimeout(wake, 50));
    }
  }

  let stopped = false;
  return {
    url: `smtp://127.0.0.1:${port}`,
    port,
    folder,
    messages,
    waitForMail,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) {
        await new Promise((done) => {
          const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
          child.once("exit", () => { clearTimeout(timer); done(); });
          child.kill("SIGTERM");
        });
      }
      rmSync(folder, { recursive: true, force: true });
    },
  };
}
