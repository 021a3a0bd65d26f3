// dockvol driven through a client generated from openapi/openapi.json: types by openapi-typescript
// (generated/dockvol.ts, made by the test), calls by openapi-fetch. tsc checks every call below
// against the spec's types; then node runs it against the service and prints one JSON line per
// step, which tests/e2e/test_ts_client.py reads.
//   DOCKVOL_URL, DOCKVOL_TOKEN (scope admin), DOCKVOL_NAME (a new volume's name), DOCKVOL_LABEL
import createClient from "openapi-fetch";
import type { paths } from "./generated/dockvol.js";

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const name = env("DOCKVOL_NAME");
const client = createClient<paths>({
  baseUrl: env("DOCKVOL_URL"),
  headers: { Authorization: `Bearer ${env("DOCKVOL_TOKEN")}` },
});
const say = (step: string, fields: Record<string, unknown>): void => {
  console.log(JSON.stringify({ step, ...fields }));
};

const created = await client.POST("/api/v1/volumes", {
  body: { name, labels: { [env("DOCKVOL_LABEL")]: "e2e" } },
});
say("create", {
  status: created.response.status,
  location: created.response.headers.get("Location"),
  name: created.data?.name,
  managed: created.data?.managed,
});

const listed = await client.GET("/api/v1/volumes", { params: { query: { name, page_size: 10 } } });
say("list", {
  status: listed.response.status,
  names: (listed.data ?? []).map((volume) => volume.name),
  pagination: listed.response.headers.get("X-Pagination"),
});

const read = await client.GET("/api/v1/volumes/{name}", { params: { path: { name } } });
const etag = read.response.headers.get("ETag") ?? "";
say("read", { status: read.response.status, etag, name: read.data?.name, in_use: read.data?.in_use });

const stale = await client.DELETE("/api/v1/volumes/{name}", {
  params: { path: { name }, header: { "If-Match": '"not-its-etag"' } },
});
say("delete with a stale ETag", {
  status: stale.response.status,
  content_type: stale.response.headers.get("Content-Type"),
  problem: stale.error,
});

const again = await client.POST("/api/v1/volumes", { body: { name } });
say("create again", {
  status: again.response.status,
  content_type: again.response.headers.get("Content-Type"),
  problem: again.error,
});

const deleted = await client.DELETE("/api/v1/volumes/{name}", {
  params: { path: { name }, header: { "If-Match": etag } },
});
say("delete", { status: deleted.response.status });

const gone = await client.GET("/api/v1/volumes/{name}", { params: { path: { name } } });
say("read after delete", { status: gone.response.status, problem: gone.error });
