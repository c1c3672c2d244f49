/**
 * Test helper: an HTTP server over the tiny synthetic model, with an `openai` client for it.
 */
import OpenAI from "openai";
import { Model } from "../runtime/model.ts";
import { Scheduler, type SchedulerOptions } from "../runtime/scheduler.ts";
import { tinyModel } from "./fixtures.ts";
import { type HttpOptions, type HttpServer, serveHttp } from "../adapters/http/server.ts";

/** What a test body gets. */
export interface Setup {
  scheduler: Scheduler;
  server: HttpServer;
  client: OpenAI;
}

/** Runs `body` against a server on a free port over the tiny model. */
export async function withServer(
  opts: { scheduler?: SchedulerOptions; http?: HttpOptions },
  body: (s: Setup) => Promise<void>,
): Promise<void> {
  const model = await Model.load(await tinyModel(), { threads: 1 });
  const scheduler = new Scheduler(model, { contextSize: 256, maxTokens: 16, parallel: 2, ...opts.scheduler });
  const server = await serveHttp(scheduler, { port: 0, modelName: "tiny", ...opts.http });
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: opts.http?.apiKey ?? "unused", maxRetries: 0 });
  try {
    await body({ scheduler, server, client });
  } finally {
    await server.close();
    model.close();
  }
}
