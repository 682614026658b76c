// `push-adapter`: the command the pusher Job runs (worker image). It packages the trainer's
// adapter files from the results volume in KAITO's adapter image layout and pushes them.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type AdapterPushResult, pushAdapterImage } from '../activities/registry/adapter-image.js';
import { registryLogin } from '../domain/docker-config.js';
import { parseImageReference } from '../domain/image-reference.js';
import { createAzureCredential, createRegistryContentClient } from './clients.js';

export async function pushAdapterCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      results: { type: 'string', default: '/mnt/results' },
      image: { type: 'string' },
      annotation: { type: 'string', multiple: true, default: [] },
      // The push Secret (KAITO's imagePushSecret), mounted as docker's config.json: the login for the registry.
      'push-secret': { type: 'string' },
    },
  });
  const pushed = await pushAdapter({
    results: values.results,
    image: values.image,
    annotations: parseAnnotationArgs(values.annotation),
    pushSecret: values['push-secret'],
    dockerConfigDir: process.env.DOCKER_CONFIG,
    staticToken: process.env.AZURE_STATIC_TOKEN,
  });
  console.log(JSON.stringify(pushed));
}

export interface PushAdapterOptions {
  results: string;
  /** registry/repository:tag. */
  image: string | undefined;
  annotations: Record<string, string>;
  /** The push Secret's name; its docker config.json is read from `dockerConfigDir` (default /root/.docker). */
  pushSecret?: string;
  dockerConfigDir?: string;
  /** A fixed registry token (the local stack's); without it, the pod's workload identity. */
  staticToken?: string;
}

/** What push-adapter does, as a function: the local stack's simulator runs it in its own process. */
export async function pushAdapter(o: PushAdapterOptions): Promise<{ image: string } & AdapterPushResult> {
  const image = o.image ? parseImageReference(o.image) : undefined;
  if (!image?.tag) throw new Error(`--image must be registry/repository:tag, not ${o.image ?? '(missing)'}`);
  const client = createRegistryContentClient(
    `https://${image.registry}`,
    image.repository,
    createAzureCredential(o.staticToken),
    o.pushSecret ? { login: secretLogin(o.pushSecret, image.registry, o.dockerConfigDir), source: `push Secret ${o.pushSecret}` } : undefined,
  );
  return { image: o.image!, ...(await pushAdapterImage(client, o.results, image.tag, o.annotations)) };
}

/** --annotation key=value arguments as an object. */
export function parseAnnotationArgs(args: string[]): Record<string, string> {
  return Object.fromEntries(
    args.map((a) => {
      const at = a.indexOf('=');
      if (at < 1) throw new Error(`--annotation must be key=value, not ${a}`);
      return [a.slice(0, at), a.slice(at + 1)];
    }),
  );
}

/** The login for `registry` in the mounted Secret: $DOCKER_CONFIG/config.json, docker's own convention (default /root/.docker). */
function secretLogin(secret: string, registry: string, dockerConfigDir = '/root/.docker') {
  const file = join(dockerConfigDir, 'config.json');
  const found = registryLogin(readFileSync(file, 'utf8'), registry);
  if ('problem' in found) throw new Error(`push Secret ${secret} (${file}): ${found.problem}`);
  return found.login;
}
