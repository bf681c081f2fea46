// A Cosmos DB REST server (@vercel/cosmosdb-server, in memory) over HTTPS on 127.0.0.1,
// for the store contract tests. The azure-cosmos SDK refuses plain HTTP, and the
// certificate the package ships expired in 2021 and names no loopback address, so the
// caller passes its own (tests/contracts/store_fixtures.py makes one per session).
//
//   node server.mjs --cert cert.pem --key key.pem [--port 0]
//
// Prints the port it listens on, alone on one line, once it accepts connections.
// Stops on SIGTERM / SIGINT, and when its stdin closes (the test process went away).

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { parseArgs } from "node:util";

const require = createRequire(import.meta.url);

// cosmosdb-server 1.0.1 answers a point read of a missing document with 500 (its
// read-document handler dereferences the missing document); Cosmos DB answers 404
// NotFound. Wrap the handler before the package builds its routes from it.
const readDocument = require("@vercel/cosmosdb-server/lib/handler/read-document.js");
const { default: partitionHeader, parsePartitionKey } = require(
  "@vercel/cosmosdb-server/lib/utils/get-partition-from-header.js",
);
const readExisting = readDocument.default;
readDocument.default = (account, req, res, params) => {
  const collection = account.database(params.dbId).collection(params.collId);
  const header = partitionHeader(req);
  if (collection.read() && header !== undefined) {
    const partition = parsePartitionKey(header, params.docId);
    if (!collection.document(params.docId, partition).read()) {
      res.statusCode = 404;
      return { code: "NotFound", message: "Entity with the specified id does not exist in the system." };
    }
  }
  return readExisting(account, req, res, params);
};

const { createHttpsServer } = require("@vercel/cosmosdb-server");

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    cert: { type: "string" },
    key: { type: "string" },
  },
});
if (!values.cert || !values.key) {
  console.error("usage: node server.mjs --cert cert.pem --key key.pem [--port 0]");
  process.exit(2);
}

const server = createHttpsServer({
  cert: readFileSync(values.cert),
  key: readFileSync(values.key),
  // Without it every response says "Connection: close": a TLS handshake per request.
  keepAlive: true,
});

// Test-only faults: `POST /_faults/lose-response {"method", "path", "how"}` arms one. The
// next request with that method whose path contains ``path`` is carried out, and then its
// response is lost: ``"how": "drop"`` closes the connection, ``"garble"`` sends bytes
// that are not HTTP. A write that landed without its answer, to see what the SDK's
// retry of it does (a dropped connection and an unreadable response take two paths).
const armed = [];
const [serve] = server.listeners("request");
server.removeAllListeners("request");
server.on("request", (req, res) => {
  if (req.method === "POST" && req.url === "/_faults/lose-response") {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      armed.push(JSON.parse(Buffer.concat(chunks).toString()));
      res.writeHead(204).end();
    });
    return;
  }
  const index = armed.findIndex((f) => f.method === req.method && req.url.includes(f.path));
  if (index >= 0) {
    const [fault] = armed.splice(index, 1);
    res.end = () => (fault.how === "garble" ? req.socket.end("NOT HTTP\r\n\r\n") : req.socket.destroy());
  }
  serve(req, res);
});

function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}

process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.resume();

server.listen(Number(values.port), "127.0.0.1", () => {
  process.stdout.write(`${server.address().port}\n`);
});
