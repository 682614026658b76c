// Custom search attributes, the one list that workflows upsert, the local stack registers with
// the dev server, and users register on their own Temporal (see README) to filter runs in the UI.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const PipelinePhase = defineSearchAttributeKey('PipelinePhase', SearchAttributeType.KEYWORD);
export const BaseModel = defineSearchAttributeKey('BaseModel', SearchAttributeType.KEYWORD);
export const TuningMethod = defineSearchAttributeKey('TuningMethod', SearchAttributeType.KEYWORD);
export const GpuVmSize = defineSearchAttributeKey('GpuVmSize', SearchAttributeType.KEYWORD);
export const AdapterRepository = defineSearchAttributeKey('AdapterRepository', SearchAttributeType.KEYWORD);

export const projectSearchAttributes = [PipelinePhase, BaseModel, TuningMethod, GpuVmSize, AdapterRepository];
