// A small call of each operation, against the client generated from
// /openapi.json (schema.ts, by openapi-typescript) through openapi-fetch.
// Only type-checked (tsc --noEmit), never run.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

type User = components["schemas"]["User"];
type Problem = components["schemas"]["Problem"];

const client = createClient<paths>({
  baseUrl: "http://127.0.0.1:8000",
  headers: { Authorization: "Bearer <token>" },
});

export async function probes(): Promise<string[]> {
  const health = await client.GET("/healthz");
  const ready = await client.GET("/readyz");
  const metrics = await client.GET("/metrics", { parseAs: "text" });
  const metadata = await client.GET("/.well-known/oauth-protected-resource");
  const draining: boolean | undefined = ready.data?.draining ?? ready.error?.draining;
  return [
    health.data?.status ?? "",
    String(draining),
    metrics.data ?? "",
    ...(metadata.data?.scopes_supported ?? []),
  ];
}

export async function me(): Promise<User | Problem | undefined> {
  const mine = await client.GET("/users/me");
  if (mine.error) {
    const problem: Problem = mine.error;
    return problem;
  }
  const changed = await client.PATCH("/users/me", { body: { name: "Ada", email: null } });
  return changed.data ?? mine.data;
}

export async function admin(): Promise<User[]> {
  const page = await client.GET("/users", {
    params: { query: { limit: 10, offset: 0, search: "ada", ordering: "-created_at" } },
  });
  // @ts-expect-error ordering is one of the documented columns
  await client.GET("/users", { params: { query: { ordering: "name" } } });
  const created = await client.POST("/users", {
    body: { sub: "auth0|ada", email: "ada@example.com", name: "Ada", is_active: true },
  });
  if (created.error) {
    const why: string = created.error.detail;
    const field: string | null | undefined = created.error.field;
    return [{ ...(page.data?.results[0] as User), name: why + (field ?? "") }];
  }
  const id: number = created.data.id;
  const path = { path: { id } };
  const one = await client.GET("/users/{id}", { params: path });
  await client.PUT("/users/{id}", { params: path, body: { is_active: false, email: null } });
  await client.PATCH("/users/{id}", { params: path, body: { is_active: true } });
  // @ts-expect-error PUT needs is_active
  await client.PUT("/users/{id}", { params: path, body: { name: "Ada" } });
  const gone = await client.DELETE("/users/{id}", { params: path });
  return [...(page.data?.results ?? []), ...(one.data ? [one.data] : []), ...(gone.error ? [] : [])];
}
