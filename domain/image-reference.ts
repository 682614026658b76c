// OCI image references (registry/repository:tag or @digest), parsed the way the distribution
// reference grammar reads them.

export interface ImageReference {
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

const component = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const pattern = new RegExp(
  `^(?:(?<registry>(?:[a-zA-Z0-9-]+\\.)*[a-zA-Z0-9-]+(?::[0-9]+)?)/)?(?<repository>${component}(?:/${component})*)` +
    `(?::(?<tag>[\\w][\\w.-]{0,127}))?(?:@(?<digest>sha256:[a-f0-9]{64}))?$`,
);

/** Parses a reference; a first component without '.', ':' or "localhost" is a Docker Hub path. */
export function parseImageReference(text: string): ImageReference | undefined {
  const match = pattern.exec(text);
  if (!match?.groups) return undefined;
  let { registry, repository } = match.groups as { registry?: string; repository: string };
  if (registry && !/[.:]|^localhost$/.test(registry)) {
    repository = `${registry}/${repository}`;
    registry = undefined;
  }
  return { registry: registry ?? 'docker.io', repository, tag: match.groups.tag, digest: match.groups.digest };
}
