// `push-adapter`: the command the pusher Job runs (worker image). It packages the trainer's
// adapter files from the results volume in KAITO's adapter image layout and pushes them.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pushAdapterImage } from '../activities/registry/adapter-image.js';
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
  const image = values.image ? parseImageReference(values.image) : undefined;
  if (!image?.tag) throw new Error(`--image must be registry/repository:tag, not ${values.image ?? '(missing)'}`);
  const annotations = parseAnnotationArgs(values.annotation);
  const client = createRegistryContentClient(
    `https://${image.registry}`,
    image.repository,
    createAzureCredential(process.env.AZURE_STATIC_TOKEN),
    values['push-secret'] ? { login: secretLogin(values['push-secret'], image.registry), source: `push Secret ${values['push-secret']}` } : undefined,
  );
  const result = await pushAdapterImage(client, values.results, image.tag, annotations);
  console.log(JSON.stringify({ image: values.image, ...result }));
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
function secretLogin(secret: string, registry: string) {
  const file = join(process.env.DOCKER_CONFIG ?? '/root/.docker', 'config.json');
  const found = registryLogin(readFileSync(file, 'utf8'), registry);
  if ('problem' in found) throw new Error(`push Secret ${secret} (${file}): ${found.problem}`);
  return found.login;
}
