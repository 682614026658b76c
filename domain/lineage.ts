// The lineage an adapter image carries as OCI annotations: what it was trained from, how, and by
// which run. KAITO reads sh.kaito.model.name; the rest answers "where did this adapter come from".
import { datasetLineage } from './dataset-url.js';
import type { DatasetSource } from './fine-tune-request.js';
import type { TuningMethod } from './models.js';

export interface LineageInput {
  model: { name: string; weightsTag: string };
  method: TuningMethod;
  dataset: DatasetSource;
  configHash: string;
  workflowId: string;
  created: string;
}

export function adapterAnnotations(l: LineageInput): Record<string, string> {
  return {
    'sh.kaito.model.name': l.model.name,
    'org.opencontainers.image.created': l.created,
    'org.opencontainers.image.base.name': `kaito-${l.model.name}:${l.model.weightsTag}`,
    'aks-finetune.io/method': l.method,
    'aks-finetune.io/dataset': datasetLineage(l.dataset),
    'aks-finetune.io/config-hash': l.configHash,
    'aks-finetune.io/workflow-id': l.workflowId,
  };
}
