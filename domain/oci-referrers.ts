// OCI 1.1 artifacts that refer to an image (`subject`), and the referrers tag schema that stands
// in for the referrers API on registries without it. Pure: the registry activities do the I/O.
// Spec: https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md
// ("Listing Referrers", "Referrers Tag Schema", "Pushing Manifests with Subject") and
// https://github.com/opencontainers/image-spec/blob/v1.1.0/manifest.md (artifactType, subject)
// and .../descriptor.md#empty-descriptor.

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType: typeof ociMediaTypes.index;
  manifests: Descriptor[];
}

export const ociMediaTypes = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  /** image-spec descriptor.md "Guidance for an Empty Descriptor": the config of an artifact with no config. */
  empty: 'application/vnd.oci.empty.v1+json',
} as const;

/** The empty JSON object `{}` as a blob: its digest and size are fixed by the image spec. */
export const emptyConfig = {
  bytes: '{}',
  descriptor: {
    mediaType: ociMediaTypes.empty,
    digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a',
    size: 2,
  },
} as const;

/** distribution-spec "Referrers Tag Schema": `<alg>-<ref>`, e.g. sha256-<hex> (truncated to 128 characters). */
export function referrersTag(subjectDigest: string): string {
  const match = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/.exec(subjectDigest);
  if (!match) throw new Error(`not a digest: ${subjectDigest}`);
  return `${match[1]}-${match[2]}`.replace(/[^a-zA-Z0-9._-]/g, '-').slice(0, 128);
}

export const emptyReferrersIndex = (): ImageIndex => ({ schemaVersion: 2, mediaType: ociMediaTypes.index, manifests: [] });

/**
 * The referrers index with `referrer` added: unchanged (`changed: false`) when it is already
 * listed, so a second record of the same artifact writes nothing (the spec's read-modify-write:
 * "the client pulls the index, adds the descriptor if not present, and pushes it back").
 */
export function withReferrer(index: ImageIndex, referrer: Descriptor): { index: ImageIndex; changed: boolean } {
  if (index.manifests.some((m) => m.digest === referrer.digest)) return { index, changed: false };
  return { index: { ...index, manifests: [...index.manifests, referrer] }, changed: true };
}

/** An artifact manifest whose `subject` is another manifest; its layers carry the payload. */
export function artifactManifest(p: { artifactType: string; subject: Descriptor; layers: Descriptor[]; annotations?: Record<string, string> }) {
  return {
    schemaVersion: 2,
    mediaType: ociMediaTypes.manifest,
    artifactType: p.artifactType,
    config: emptyConfig.descriptor,
    layers: p.layers,
    subject: p.subject,
    ...(p.annotations ? { annotations: p.annotations } : {}),
  };
}

/** The descriptor a referrers list gives for an artifact manifest (distribution-spec "Listing Referrers"). */
export const referrerDescriptor = (manifest: ReturnType<typeof artifactManifest>, digest: string, size: number): Descriptor => ({
  mediaType: ociMediaTypes.manifest,
  digest,
  size,
  artifactType: manifest.artifactType,
  ...(manifest.annotations ? { annotations: manifest.annotations } : {}),
});

/** Reads an index's manifests of one artifactType (the API's `?artifactType=` filter, which a registry may not apply). */
export const referrersOfType = (index: { manifests?: Descriptor[] }, artifactType: string): Descriptor[] =>
  (index.manifests ?? []).filter((m) => m.artifactType === artifactType);
