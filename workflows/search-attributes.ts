// Custom search attributes, the one list that workflows upsert, the local stack registers with
// the dev server, and users register on their own Temporal (see docs/operations.md) to filter runs in the UI.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const PipelinePhase = defineSearchAttributeKey('PipelinePhase', SearchAttributeType.KEYWORD);
export const BaseModel = defineSearchAttributeKey('BaseModel', SearchAttributeType.KEYWORD);
export const TuningMethod = defineSearchAttributeKey('TuningMethod', SearchAttributeType.KEYWORD);
export const GpuVmSize = defineSearchAttributeKey('GpuVmSize', SearchAttributeType.KEYWORD);
export const AdapterRepository = defineSearchAttributeKey('AdapterRepository', SearchAttributeType.KEYWORD);
/** A promotion's candidate pass rate on its suite (0 to 1). */
export const EvalPassRate = defineSearchAttributeKey('EvalPassRate', SearchAttributeType.DOUBLE);
/** The endpoint a promotion is about. */
export const Endpoint = defineSearchAttributeKey('Endpoint', SearchAttributeType.KEYWORD);
/** A promotion's state: loading, evaluating, awaiting-approval, ..., promoted, rejected, rolled-back, failed. */
export const PromotionState = defineSearchAttributeKey('PromotionState', SearchAttributeType.KEYWORD);

/** How far a fineTune run's training is, in whole percent of its steps (moved in 5 % steps). */
export const TrainingProgress = defineSearchAttributeKey('TrainingProgress', SearchAttributeType.INT);

export const projectSearchAttributes = [PipelinePhase, BaseModel, TuningMethod, GpuVmSize, AdapterRepository, EvalPassRate, Endpoint, PromotionState, TrainingProgress];
