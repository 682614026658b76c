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

/** What an evaluation artifact (promoteAdapter's record) holds that a reader needs. */
interface RecordedEvaluation {
  workflowId?: string;
  endpoint?: string;
  versionName?: string;
  outcome?: string;
  scores?: { candidate?: { passed: number; total: number; passRate: number }; evalLoss?: number };
}

/**
 * "Trained on what, scoring what" for one served version, in two lines: the image's lineage
 * annotations, and the evaluation recorded when it was promoted onto this endpoint (the latest
 * recorded for it on this endpoint; else the latest at all).
 */
export function lineageSummary(annotations: Record<string, string>, evaluations: unknown[], served: { endpoint: string; versionName: string }): string[] {
  const a = annotations;
  const trained = a['aks-finetune.io/workflow-id']
    ? `trained by ${a['aks-finetune.io/workflow-id']}: ${a['aks-finetune.io/method'] ?? '?'} on ${a['sh.kaito.model.name'] ?? '?'}, dataset ${a['aks-finetune.io/dataset'] ?? '?'}, ${a['org.opencontainers.image.created'] ?? ''}`.trimEnd()
    : 'trained by: not recorded in the image';
  const records = evaluations as RecordedEvaluation[];
  const evaluation = records.filter((e) => e.endpoint === served.endpoint && e.versionName === served.versionName).at(-1) ?? records.at(-1);
  const candidate = evaluation?.scores?.candidate;
  const scored = !evaluation
    ? 'scored: no evaluation recorded'
    : `scored: ${candidate ? `${candidate.passed}/${candidate.total} (${(candidate.passRate * 100).toFixed(1)}%)` : 'no suite'}${evaluation.scores?.evalLoss !== undefined ? `, eval loss ${evaluation.scores.evalLoss}` : ''}, ${evaluation.outcome ?? '?'} by ${evaluation.workflowId ?? '?'}`;
  return [trained, scored];
}
