// A KAITO tuning Workspace (kaito.sh v1alpha1 or v1beta1; fields at the top level, no `spec`),
// as users bring it from KAITO. Every field is either honoured or refused by name with the
// reason (see /work/shared/reference/kaito-contract.md and KAITO's api/v1beta1/workspace_types.go).
import { z } from 'zod';
import { dnsLabel, dnsSubdomain, list, number, oneOf, refused, strict, text } from './schema.js';

export const kaitoApiVersions = ['kaito.sh/v1alpha1', 'kaito.sh/v1beta1'] as const;

export const kaitoWorkspaceSchema = strict(
  {
    apiVersion: z.enum(kaitoApiVersions, { error: `one of ${kaitoApiVersions.join(', ')}` }),
    kind: z.literal('Workspace', { error: '"Workspace"' }),
    // Kubernetes metadata carries much more (labels, annotations, uid...): only these are read.
    metadata: z
      .looseObject({ name: dnsLabel(40, 'run name').optional(), namespace: dnsLabel(63, 'namespace').optional() }, { error: 'an object' })
      .optional(),
    resource: strict({
      instanceType: text('an Azure VM size name, e.g. Standard_NC24ads_A100_v4', { max: 64 }).optional(),
      count: number(1, 1, { integer: true }).optional(),
      labelSelector: z.looseObject({}, { error: 'a label selector' }).optional(),
      preferredNodes: refused('this product creates its own node pool; preferredNodes (bring-your-own nodes) is not read'),
    }).optional(),
    inference: refused('a Workspace with both tuning and inference is invalid in KAITO too; use the request\'s deploy field to serve the adapter'),
    tuning: strict({
      preset: strict({
        name: text('a model preset name', { max: 100 }),
        presetOptions: refused('presetOptions (private model images) are not supported; use a built-in preset'),
        // Deprecated in v1beta1 (api/v1beta1/workspace_types.go); "private" goes with presetOptions.
        accessMode: oneOf(['public', 'private']).optional(),
      }).optional(),
      // KAITO compares the method case-insensitively.
      method: text('"lora" or "qlora" (any case)', { pattern: /^(lora|qlora)$/i, max: 5 }).optional(),
      // A ConfigMap of training parameters in the Workspace's namespace, read when the run starts.
      config: dnsSubdomain('ConfigMap').optional(),
      input: strict({
        urls: list(text('an http(s) URL of at most 2048 characters', { max: 2048 }), 1, 100, 'URLs').optional(),
        image: text('an image reference of at most 255 characters').optional(),
        imagePullSecrets: list(dnsSubdomain('Secret'), 1, 1, 'Secret names').optional(),
        volumeSource: strict({
          persistentVolumeClaim: strict({ claimName: dnsSubdomain('PersistentVolumeClaim'), readOnly: z.boolean().optional() }),
        }).optional(),
      }).optional(),
      output: strict({
        image: text('an image reference of at most 255 characters').optional(),
        // Checked as a Secret name after the request's own fields are merged in (a request may replace KAITO's placeholder).
        imagePushSecret: text('a Secret name', { max: 253 }).optional(),
        // The adapter's files are copied there after training (request output.volume).
        volumeSource: strict({ persistentVolumeClaim: strict({ claimName: dnsSubdomain('PersistentVolumeClaim') }) }).optional(),
      }).optional(),
    }),
  },
  'a KAITO Workspace object (Workspace text is parsed before validation)',
);

export type KaitoWorkspace = z.infer<typeof kaitoWorkspaceSchema>;

/** The placeholders in KAITO's published tuning examples, which its docs tell users to replace. */
const kaitoPlaceholders = ['ACR_REPO_HERE', 'IMAGE_NAME_HERE', 'ACR_REGISTRY_SECRET_HERE'];

/**
 * A KAITO example's placeholders still in the output image or push Secret: KAITO's own webhook
 * refuses such an image too (repository names are lowercase). Each problem says how to give the
 * value without editing the file (request fields win over the Workspace's).
 */
export function kaitoPlaceholderProblems({ image, pushSecret }: { image?: string; pushSecret?: string }): string[] {
  const found = (value: string | undefined) => kaitoPlaceholders.filter((p) => value?.includes(p));
  const problems: string[] = [];
  if (found(image).length > 0) {
    problems.push(`output.image "${image}" still holds KAITO's example placeholders ${found(image).join(', ')}: give your registry and repository (the CLI's --image myacr.azurecr.io/phi-3-adapter:0.0.1, or the request's output.image)`);
  }
  if (found(pushSecret).length > 0) {
    problems.push(`the push Secret "${pushSecret}" is KAITO's example placeholder: give your docker-config Secret's name (the CLI's --push-secret NAME, or the request's output.pushSecret)`);
  }
  return problems;
}
