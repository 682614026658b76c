// A run's own tuning ConfigMap (KAITO's tuning.config), read from its cluster as KAITO's controller
// reads it, and checked before any GPU is asked for. Its parameters go into the run's history: they
// are training settings, not secrets (KAITO keeps them in a ConfigMap for the same reason).
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { failureTypes } from '../../domain/failure-types.js';
import type { TuningMethod } from '../../domain/models.js';
import { checkTuningConfig, tuningConfigKey, type TuningConfigSections } from '../../domain/tuning-configmap.js';
import { hasStatus } from './api-errors.js';

export function createTuningConfigMapActivities({ kubeConfig }: { kubeConfig: KubeConfig }) {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  return {
    /** The ConfigMap's training_config sections, checked for `method`; every problem at once, as a non-retryable InvalidRequest. */
    async readTuningConfigMap(namespace: string, name: string, method: TuningMethod): Promise<TuningConfigSections> {
      const source = `tuning.configMap ${name}`;
      // Every problem, as a list the workflow reports one by one (workflows/input-checks.ts).
      const invalid = (problems: string[]) => ApplicationFailure.create({ message: problems.join('; '), type: failureTypes.invalidRequest, nonRetryable: true, details: [{ problems }] });
      const configMap = await core.readNamespacedConfigMap({ name, namespace }).catch((err: unknown) => {
        if (hasStatus(err, 404)) throw invalid([`${source}: no such ConfigMap in namespace ${namespace}; create it there first (kubectl apply -n ${namespace} -f <file>)`]);
        throw err;
      });
      const text = configMap.data?.[tuningConfigKey];
      if (text === undefined) throw invalid([`${source} in namespace ${namespace} has no key ${tuningConfigKey} (it has ${Object.keys(configMap.data ?? {}).join(', ') || 'none'})`]);
      const checked = checkTuningConfig(text, method, `${source}`);
      if (!checked.ok) throw invalid(checked.problems);
      return checked.sections;
    },
  };
}
