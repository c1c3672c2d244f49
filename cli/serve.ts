/**
 * `bonsai serve`: load a model and answer generation requests over MQTT and/or HTTP (one scheduler)
 * until SIGINT/SIGTERM; SIGHUP reloads the model file.
 */
import { numberFlag, parseFlags, UsageError } from "./args.ts";
import { MqttFatalError as MqttFatalErrorClass, MqttService } from "../adapters/mqtt/service.ts";
import { DEFAULT_MAX_PAYLOAD, resolveMqttOptions } from "../adapters/mqtt/options.ts";
import { nodeTopics } from "../adapters/mqtt/topics.ts";
import { MODEL_FLAGS, MODEL_FLAGS_USAGE, parseModelFlags, setupModel } from "./setup.ts";
import { reloadModel, type ReloadResult } from "./reload.ts";
import { ReloadableScheduler, type ReloadMode } from "../runtime/reloadable.ts";
import { loadServeConfig } from "./serve_config.ts";
import { Metrics } from "../adapters/metrics.ts";
import { readThermal } from "../devices/thermal.ts";
import { parseListenAddress } from "../adapters/http/address.ts";
import { type HttpServer, serveHttp } from "../adapters/http/server.ts";

export const SERVE_USAGE = `Usage: bonsai serve --model FILE --mqtt URL --node NAME [options]
       bonsai serve --model FILE --http [HOST:]PORT [options]    (or both, over one scheduler)

Answers generation requests over MQTT (5, falling back to 3.1.1). Topics, under PREFIX/NODE/:
  request  requests (JSON or CBOR); replies go to the MQTT 5 Response Topic with the
           Correlation Data echoed, or to the payload's "reply_to" topic (MQTT 3.1.1)
  cancel   {"id": ...} (or the request's Correlation Data) cancels a running request; it must
           carry the same reply address as the request (ids are scoped to their sender)
  status   retained presence: online (model, shape, capabilities, limits) or offline
  metrics  retained counters and gauges, every --metrics-interval seconds
With --group G the node also serves PREFIX/group/G/request (MQTT shared subscription
$share/G/...: the broker gives each request to one node of the group) and PREFIX/group/G/cancel.

HTTP (--http): the OpenAI API at /v1 (chat/completions, completions, models), /health,
/metrics (Prometheus), the kiosk chat page at / and POST /admin/reload (as SIGHUP; needs
--api-key). Any model name is accepted.
      --http ADDR         listen on PORT or HOST:PORT (host default 127.0.0.1; 0.0.0.0:8080
                          for every interface)
      --api-key KEY       bearer token the API and /metrics require (better: BONSAI_API_KEY)
      --kiosk-system TEXT system prompt of the kiosk page's conversations

Options:
      --mqtt URL          broker: mqtt://host:1883, mqtts://host:8883, ws://, wss:// (required)
      --node NAME         this node's name, one topic level (required)
      --prefix P          topic prefix (default bonsai)
      --client-id ID      MQTT client id (default bonsai-NODE)
      --username U        broker user name
      --password P        broker password (better: the BONSAI_MQTT_PASSWORD environment variable)
      --ca FILE           PEM CA certificate of the broker (TLS)
      --cert FILE         PEM client certificate (TLS client authentication; needs --key)
      --key FILE          PEM private key of --cert
      --qos 0|1|2         QoS of the subscription and of replies (default 1)
      --mqtt-version V    5, 3.1.1 or auto (default auto: 5, then 3.1.1 if refused)
      --max-payload N     largest request in bytes (default ${DEFAULT_MAX_PAYLOAD}); larger: TOO_LARGE reply
      --keepalive S       MQTT keepalive in seconds (default 30): how soon a dead broker is noticed
      --reply-prefix P    topic levels replies may go to (repeatable; default PREFIX/replies);
                          the node's own topics are always refused
      --session-expiry S  persistent session: the broker keeps the subscriptions and queues QoS 1
                          requests for S seconds while the node is down (default 0: clean start)
      --group NAME        also serve the share group's request topic (see above)
      --group-queue N     group requests waiting here before more get BUSY (default: --parallel)
      --metrics-interval S
                          seconds between metrics messages (default 60; 0: on connect only)
      --drain finish|cancel
                          on SIGTERM, let running requests finish (at most --drain-timeout) or
                          cancel them (default cancel); either way each gets its final reply
      --drain-timeout S   longest drain with --drain finish (default 60)
      --config FILE       JSON server-side defaults: {"request": {system, sampling, max_tokens,
                          json_schema or tools...}, "limits": {"max_tokens": N}} (README)
${MODEL_FLAGS_USAGE}
      --reload finish|cancel
                          on SIGHUP the model file is loaded again (checked, beside the old
                          model) and serves new requests; the old model's requests finish
                          (default) or are cancelled. A broken file is refused: the old model
                          serves on
  -q, --quiet             no log lines on stderr
  -h, --help              this text

Replies: {"event":"token","seq":N,"text":...} per chunk (when "stream" is not false), then one
final {"event":"done","seq":N,"text","finish_reason","usage","timings"} or
{"event":"error","seq":N,"finish_reason":"error","error":{"code","message"}}, each with the
request's "id". SIGINT/SIGTERM: subscriptions are dropped, running requests are drained (see
--drain) and answered, the offline status is published, and the process exits (0 on SIGTERM,
130 on SIGINT). Exit 2: bad flags, or another process serves the same --node; exit 1: the
broker refused a subscription or the connection.`;

const OPTIONS = {
  ...MODEL_FLAGS,
  mqtt: { type: "string" },
  node: { type: "string" },
  prefix: { type: "string" },
  "client-id": { type: "string" },
  username: { type: "string" },
  password: { type: "string" },
  ca: { type: "string" },
  cert: { type: "string" },
  key: { type: "string" },
  qos: { type: "string" },
  "mqtt-version": { type: "string" },
  "max-payload": { type: "string" },
  keepalive: { type: "string" },
  "reply-prefix": { type: "string", multiple: true },
  "session-expiry": { type: "string" },
  group: { type: "string" },
  "group-queue": { type: "string" },
  "metrics-interval": { type: "string" },
  drain: { type: "string" },
  "drain-timeout": { type: "string" },
  config: { type: "string" },
  reload: { type: "string" },
  http: { type: "string" },
  "api-key": { type: "string" },
  "kiosk-system": { type: "string" },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
} as const;

/** Runs the command; returns the process exit code. */
export async function serveCommand(args: string[]): Promise<number> {
  const { values: v } = parseFlags(args, OPTIONS);
  if (v.help) {
    console.log(SERVE_USAGE);
    return 0;
  }
  const flags = parseModelFlags(v);
  if (!v.mqtt && !v.http) {
    throw new UsageError("give --mqtt URL (e.g. mqtt://127.0.0.1:1883), --http [HOST:]PORT, or both");
  }
  if (v.mqtt && !v.node) throw new UsageError("--node NAME is required with --mqtt");
  let listen;
  try {
    listen = v.http ? parseListenAddress(v.http) : undefined;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const versions: Record<string, 4 | 5 | undefined> = {
    auto: undefined,
    "5": 5,
    "3.1.1": 4,
    "4": 4,
  };
  const version = v["mqtt-version"] ?? "auto";
  if (!(version in versions)) {
    throw new UsageError(
      `--mqtt-version must be 5, 3.1.1 or auto, got '${version}'`,
    );
  }
  const mqttOptions = {
    url: v.mqtt ?? "",
    node: v.node ?? "",
    prefix: v.prefix,
    clientId: v["client-id"],
    username: v.username,
    password: v.password ?? Deno.env.get("BONSAI_MQTT_PASSWORD"),
    ca: v.ca,
    cert: v.cert,
    key: v.key,
    qos: numberFlag("qos", v.qos, { integer: true, min: 0, max: 2 }) as
      | 0
      | 1
      | 2
      | undefined,
    maxPayload: numberFlag("max-payload", v["max-payload"], {
      integer: true,
      min: 64,
    }),
    keepalive: numberFlag("keepalive", v.keepalive, {
      integer: true,
      min: 1,
      max: 65535,
    }),
    protocolVersion: versions[version],
    replyPrefixes: v["reply-prefix"],
    sessionExpiry: numberFlag("session-expiry", v["session-expiry"], {
      integer: true,
      min: 0,
      max: 0xffffffff,
    }),
    group: v.group,
  };
  const groupQueue = numberFlag("group-queue", v["group-queue"], {
    integer: true,
    min: 0,
  });
  const metricsInterval = numberFlag(
    "metrics-interval",
    v["metrics-interval"],
    { min: 0, max: 86400 },
  );
  const drain = v.drain ?? "cancel";
  if (drain !== "finish" && drain !== "cancel") {
    throw new UsageError(`--drain must be finish or cancel, got '${drain}'`);
  }
  const drainTimeout = numberFlag("drain-timeout", v["drain-timeout"], { min: 0 }) ?? 60;
  const config = v.config !== undefined ? loadServeConfig(v.config) : {};
  // Everything about the broker is checked before the model loads (which can take many seconds).
  try {
    if (v.mqtt) {
      const resolved = resolveMqttOptions(mqttOptions);
      nodeTopics(resolved.prefix, resolved.node, resolved.group);
    }
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const reloadMode = (v.reload ?? "finish") as ReloadMode;
  if (reloadMode !== "finish" && reloadMode !== "cancel") {
    throw new UsageError(`--reload must be finish or cancel, got '${v.reload}'`);
  }
  const encoder = new TextEncoder();
  const log = (s: string) => {
    if (!v.quiet) Deno.stderr.writeSync(encoder.encode(`bonsai serve: ${s}\n`));
  };

  let reloadNow = (_why: string): Promise<ReloadResult> =>
    Promise.resolve({ ok: false, message: "the model is still loading" });
  // HTTP listens while the model loads: /health says loading, the API answers 503.
  const setup = setupModel(flags, { log }).then((s) => ({ ...s, host: new ReloadableScheduler(s.scheduler) }));
  // One metrics object for both adapters: a request over either shows in both outputs.
  const metrics = new Metrics({ thermal: () => readThermal() });
  let http: HttpServer | undefined;
  if (listen) {
    try {
      http = await serveHttp(setup.then((s) => s.host), {
        ...listen,
        apiKey: v["api-key"] ?? Deno.env.get("BONSAI_API_KEY"),
        kioskSystem: v["kiosk-system"],
        modelName: flags.model.replace(/^.*[\\/]/, "").replace(/\.gguf$/i, ""),
        log,
        metrics,
        reload: () => reloadNow("POST /admin/reload"),
      });
    } catch (e) {
      setup.then((s) => s.model.close(), () => {});
      throw e;
    }
  }
  const { settings, host: scheduler } = await setup.catch(async (e) => {
    await http?.close();
    throw e;
  });
  if (settings.plan) metrics.setPlan(settings.plan);
  // One reload at a time, whether asked by SIGHUP or by the HTTP admin action.
  let reloading: Promise<unknown> = Promise.resolve();
  reloadNow = (why) => {
    log(`${why}: reloading ${flags.model}`);
    const result = reloading.then(() => reloadModel(scheduler, flags, settings, { mode: reloadMode, log }));
    reloading = result;
    return result;
  };
  const onReload = () => void reloadNow("SIGHUP");
  Deno.addSignalListener("SIGHUP", onReload);
  const controller = new AbortController();
  let signal: Deno.Signal | undefined;
  let fatal: MqttFatalErrorClass | undefined;
  const onSignal = (name: Deno.Signal) => () => {
    if (signal) {
      log(`second ${name}: exiting now`);
      Deno.exit(name === "SIGINT" ? 130 : 143);
    }
    signal = name;
    controller.abort();
  };
  const handlers = (["SIGINT", "SIGTERM"] as const).map((name) => [name, onSignal(name)] as const);
  for (const [name, h] of handlers) Deno.addSignalListener(name, h);
  try {
    const service = v.mqtt
      ? new MqttService(scheduler, {
        ...mqttOptions,
        log,
        metrics,
        metricsInterval,
        groupQueue,
        requestDefaults: config.requestDefaults,
        maxTokensLimit: config.maxTokensLimit,
        onFatal: (e) => {
          fatal = e;
          controller.abort();
        },
      })
      : undefined;
    if (service) {
      log(`connecting to ${v.mqtt} as node '${v.node}' (requests on ${service.topics.request})`);
      try {
        await service.start(controller.signal);
      } catch (e) {
        if (e instanceof MqttFatalErrorClass) {
          log(e.message);
          return e.exitCode;
        }
        if (controller.signal.aborted) return signal === "SIGINT" ? 130 : 0;
        throw e;
      }
    }
    log(
      `serving: ${settings.parallel} in parallel, KV ${scheduler.contextSize} tokens each, queue ${scheduler.maxQueue}`,
    );
    await new Promise<void>((resolve) =>
      controller.signal.addEventListener("abort", () => resolve(), {
        once: true,
      })
    );
    if (fatal) {
      log(`exiting: ${fatal.message}`);
      await http?.close();
      await service?.stop();
      return fatal.exitCode;
    }
    log(`${signal}: stopping`);
    await http?.close();
    if (http) {
      // The metrics are shared: with MQTT too, these counts include its requests.
      const r = metrics.snapshot().requests;
      const which = service ? "all requests" : "HTTP";
      log(
        `${which}: served ${r.served}, cancelled ${r.cancelled}, failed ${r.failed}, busy ${r.busy}, rejected ${r.rejected}`,
      );
    }
    if (service) {
      await service.stop({ drain, drainTimeoutMs: drainTimeout * 1000 });
      const s = service.stats;
      log(
        `served ${s.completed}, cancelled ${s.cancelled}, failed ${s.failed}, busy ${s.busy}, expired ${s.expired}, ` +
          `no reply address ${s.droppedNoReplyTo}, reply refused ${s.replyRefused}, retained ignored ${s.retainedIgnored}, ` +
          `duplicate ids ${s.duplicates}, redeliveries ignored ${s.redelivered}`,
      );
    }
    return signal === "SIGINT" ? 130 : 0;
  } finally {
    for (const [name, h] of handlers) Deno.removeSignalListener(name, h);
    Deno.removeSignalListener("SIGHUP", onReload);
    await http?.close();
    await reloading;
    scheduler.model.close();
  }
}
