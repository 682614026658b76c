// Entry point of the AKS contract emulator, started by `npm run stack` (see ../components.ts).
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { join } from 'node:path';
import { KubeConfig, VersionApi } from '@kubernetes/client-node';
import { loadStackConfig } from '../config.js';
import { AgentPools } from './agent-pools.js';
import { Faults } from './faults.js';
import { PoolNodes } from './pool-nodes.js';
import { createArmHandler } from './server.js';

const config = loadStackConfig();
const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(config.kubeconfig);
const version = await kubeConfig.makeApiClient(VersionApi).getCode();
const kubernetesVersion = version.gitVersion.replace(/^v/, '');

const stateDir = join(config.stateDir, 'data', 'aks-emulator');
mkdirSync(stateDir, { recursive: true });
const delay = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const pools = new AgentPools(
  new PoolNodes(kubeConfig, config.azure.clusterName, config.azure.location),
  join(stateDir, 'state.json'),
  kubernetesVersion,
  {
    provisioningDelayMs: delay('AKS_EMULATOR_PROVISIONING_DELAY_MS', 3000),
    deletionDelayMs: delay('AKS_EMULATOR_DELETION_DELAY_MS', 2000),
  },
  config.azure.location,
);
const handler = createArmHandler({ ...config.azure, kubernetesVersion }, pools, new Faults());
const server = createServer(
  { cert: readFileSync(join(config.certsDir, 'server.crt')), key: readFileSync(join(config.certsDir, 'server.key')) },
  (req, res) => void handler(req, res),
);
server.listen(config.ports.arm, config.host, () => {
  console.log(`AKS emulator listening on https://${config.host}:${config.ports.arm} (Kubernetes ${kubernetesVersion})`);
});
const shutdown = () => {
  pools.close();
  server.close(() => process.exit(0));
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
