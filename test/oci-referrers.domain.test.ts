// The referrers tag schema's pure parts: the tag's name and the idempotent index update.
import { describe, expect, it } from 'vitest';
import { artifactManifest, emptyConfig, emptyReferrersIndex, referrerDescriptor, referrersOfType, referrersTag, withReferrer } from '../domain/oci-referrers.js';

const hex = 'a'.repeat(64);
const subject = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${hex}`, size: 500 };

describe('referrers tag schema', () => {
  it('names the tag <alg>-<hex> and refuses what is no digest', () => {
    expect(referrersTag(`sha256:${hex}`)).toBe(`sha256-${hex}`);
    expect(() => referrersTag('latest')).toThrow('not a digest: latest');
  });

  it('adds a referrer once: a second add changes nothing', () => {
    const manifest = artifactManifest({ artifactType: 'application/x.eval', subject, layers: [] });
    const referrer = referrerDescriptor(manifest, `sha256:${'b'.repeat(64)}`, 321);
    const first = withReferrer(emptyReferrersIndex(), referrer);
    expect(first).toEqual({ changed: true, index: { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [referrer] } });
    expect(withReferrer(first.index, referrer)).toEqual({ changed: false, index: first.index });
    const other = { ...referrer, digest: `sha256:${'c'.repeat(64)}` };
    expect(withReferrer(first.index, other).index.manifests).toEqual([referrer, other]);
  });

  it("builds an artifact manifest with the empty config, the subject and the artifactType, which the index entry repeats", () => {
    const manifest = artifactManifest({ artifactType: 'application/x.eval', subject, layers: [], annotations: { a: 'b' } });
    expect(manifest).toMatchObject({ mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/x.eval', config: emptyConfig.descriptor, subject });
    const referrer = referrerDescriptor(manifest, `sha256:${'b'.repeat(64)}`, 10);
    expect(referrer).toEqual({ mediaType: manifest.mediaType, digest: `sha256:${'b'.repeat(64)}`, size: 10, artifactType: 'application/x.eval', annotations: { a: 'b' } });
    expect(referrersOfType({ manifests: [referrer, { ...referrer, artifactType: 'other' }] }, 'application/x.eval')).toEqual([referrer]);
  });
});
