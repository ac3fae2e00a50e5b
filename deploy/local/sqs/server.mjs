// A local SQS-compatible server (fauxqs) for the tests and CI, listening on 127.0.0.1 only.
//   node server.mjs [PORT]     PORT, else $EVENTPROC_SQS_PORT, else 0 (any free port)
//   EVENTPROC_SQS_PARENT_PID  the PID of the process that started this one: exit once it is no longer the parent (the
//                             test fixture sets it, so a killed test host leaves no server behind)
// Prints one line "fauxqs listening on http://127.0.0.1:PORT" once it accepts requests; the line is the readiness
// signal deploy/local/sqs.sh and the test fixture wait for. SIGTERM or SIGINT closes it and exits 0.
//
// fauxqs's own CLI (startFauxqs) binds every interface, so the app is built and bound here instead.
// All state lives in memory: queues and messages vanish with the process.
import { buildApp } from "fauxqs";

const bindAddress = "127.0.0.1";
const portText = process.argv[2] ?? process.env.EVENTPROC_SQS_PORT ?? "0";
const port = Number(portText);
if (!/^\d+$/.test(portText) || port > 65535) {
  console.error(`server.mjs: the port must be a number from 0 to 65535, got "${portText}"`);
  process.exit(64);
}

// `host` only shapes queue URLs ("http://sqs.<region>.<host>:PORT/000000000000/<name>"); the SQS JSON protocol sends
// requests to the client's endpoint and names the queue by that URL, so the URL must be stable, not reachable.
// "localhost" is fauxqs's default: it keeps every queue URL the same whoever asks.
const app = buildApp({ logger: process.env.EVENTPROC_SQS_LOG === "true", host: "localhost" });

let closing = false;
async function close(signal) {
  if (closing) {
    return;
  }
  closing = true;
  try {
    await app.close();
    process.exit(0);
  } catch (error) {
    console.error(`server.mjs: error while closing on ${signal}:`, error);
    process.exit(1);
  }
}
process.on("SIGTERM", () => close("SIGTERM"));
process.on("SIGINT", () => close("SIGINT"));

const parentPid = Number(process.env.EVENTPROC_SQS_PARENT_PID ?? "0");
if (parentPid > 0) {
  // An orphan is adopted by init or a subreaper, so a changed parent PID means the parent is gone (and, unlike
  // probing the PID, is not fooled by the PID's reuse).
  setInterval(() => {
    if (process.ppid !== parentPid) {
      close("the exit of its parent");
    }
  }, 1000).unref();
}

try {
  await app.listen({ host: bindAddress, port });
} catch (error) {
  console.error(`server.mjs: cannot listen on ${bindAddress}:${port}:`, error.message);
  process.exit(1);
}

const { port: actualPort } = app.server.address();
console.log(`fauxqs listening on http://${bindAddress}:${actualPort}`);
