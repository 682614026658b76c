// The ARM surface of the emulator: the managed cluster and agent-pool REST API with ARM's
// long-running-operation protocol, as @azure/arm-containerservice calls it, plus a control
// API under /_emulator for settings, fault injection and the request log.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { clusterResourceId } from '../../../domain/cluster-targets.js';
import { ArmError } from './arm-error.js';
import type { AgentPools } from './agent-pools.js';
import { parseCapacity, usagesResponse } from './capacity.js';
import { Faults, operationFaultError, parseFault } from './faults.js';

export interface ClusterIdentity {
  subscriptionId: string;
  resourceGroup: string;
  clusterName: string;
  location: string;
  kubernetesVersion: string;
}

export interface RequestRecord {
  method: string;
  path: string;
  status: number;
  at: number;
  /** For a PUT: the property names its body set (what a client sends, e.g. never nodeImageVersion). */
  propertiesSent?: string[];
  /** For a PUT: the VM size it asked for, and its zones. */
  vmSize?: string;
  availabilityZones?: string[];
}

const provider = 'providers/Microsoft.ContainerService';
const poolNamePattern = /^[a-z][a-z0-9]{0,11}$/;

async function readJson(req: IncomingMessage): Promise<unknown> {
  let raw = '';
  for await (const chunk of req) raw += chunk;
  if (raw === '') return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    throw new ArmError(400, 'InvalidRequestContent', 'The request content was invalid and could not be deserialized.');
  }
}

/**
 * The cluster's own settings that `doctor` reads (ManagedClusterProperties: networkProfile,
 * securityProfile.workloadIdentity, oidcIssuerProfile; learn.microsoft.com/rest/api/aks/managed-clusters/get,
 * where networkPolicy is absent when none was chosen). By default a cluster set up as
 * docs/operations.md says: Azure CNI powered by Cilium with its network policy, workload identity
 * and the OIDC issuer enabled. Tests change them through /_emulator/cluster.
 */
export interface ClusterProfile {
  networkPolicy: 'none' | 'azure' | 'calico' | 'cilium';
  workloadIdentity: boolean;
  oidcIssuer: boolean;
}

export const defaultClusterProfile = (): ClusterProfile => ({ networkPolicy: 'cilium', workloadIdentity: true, oidcIssuer: true });

export function createArmHandler(cluster: ClusterIdentity, pools: AgentPools, faults: Faults) {
  const requests: RequestRecord[] = [];
  const profile = defaultClusterProfile();
  const sent = new WeakMap<IncomingMessage, Pick<RequestRecord, 'propertiesSent' | 'vmSize' | 'availabilityZones'>>();
  const clusterId = clusterResourceId(cluster);
  const locationBase = `/subscriptions/${cluster.subscriptionId}/${provider}/locations/${cluster.location}`;
  const computeUsages = `/subscriptions/${cluster.subscriptionId}/providers/Microsoft.Compute/locations/${cluster.location}/usages`.toLowerCase();

  const send = (res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'x-ms-request-id': crypto.randomUUID(), ...headers });
    res.end(body === undefined ? undefined : JSON.stringify(body));
  };

  async function control(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (path === '/_emulator/health') return send(res, 200, { status: 'ok' });
    if (path === '/_emulator/settings') {
      if (req.method === 'PUT') Object.assign(pools.timing, (await readJson(req)) ?? {});
      return send(res, 200, pools.timing);
    }
    if (path === '/_emulator/faults') {
      if (req.method === 'POST') {
        const fault = parseFault(await readJson(req));
        // Not a response to a request: Azure evicts the nodes now.
        if (fault.kind === 'spot-eviction') return send(res, 200, await pools.evictSpotNodes(fault.pool!, fault.nodes!));
        faults.add(fault);
      }
      if (req.method === 'DELETE') faults.clear();
      return send(res, 200, faults.list());
    }
    if (path === '/_emulator/capacity') {
      if (req.method === 'PUT') pools.capacity = parseCapacity(await readJson(req));
      return send(res, 200, pools.capacity);
    }
    if (path === '/_emulator/cluster') {
      if (req.method === 'PUT') Object.assign(profile, (await readJson(req)) ?? {});
      return send(res, 200, profile);
    }
    if (path === '/_emulator/operations') return send(res, 200, pools.operations());
    if (path === '/_emulator/requests') {
      if (req.method === 'DELETE') requests.length = 0;
      return send(res, 200, requests);
    }
    throw new ArmError(404, 'NotFound', `no control endpoint ${path}`);
  }

  async function arm(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const method = req.method ?? 'GET';
    if (!/^Bearer \S+/.test(req.headers.authorization ?? '')) {
      throw new ArmError(401, 'AuthenticationFailed', "Authentication failed. The 'Authorization' header is missing.");
    }
    if (!url.searchParams.get('api-version')) {
      throw new ArmError(400, 'MissingApiVersionParameter', "The api-version query parameter (?api-version=) is required for all requests.");
    }
    const path = url.pathname.replace(/\/$/, '');
    const lower = path.toLowerCase();
    const apiVersion = url.searchParams.get('api-version')!;

    // Operation status (Azure-AsyncOperation) and operation result (Location) polls.
    const opMatch = lower.startsWith(locationBase.toLowerCase()) && /\/(operations|operationresults)\/([^/]+)$/.exec(path);
    if (opMatch && method === 'GET') {
      const op = pools.operation(opMatch[2]!);
      if (!op) throw new ArmError(404, 'NotFound', `Operation ${opMatch[2]} was not found.`);
      if (opMatch[1] === 'operations') {
        return send(res, 200, {
          id: `${locationBase}/operations/${op.id}`,
          name: op.id,
          status: op.status,
          startTime: op.startTime,
          ...(op.endTime ? { endTime: op.endTime } : {}),
          ...(op.error ? { error: op.error } : {}),
        });
      }
      if (op.status === 'InProgress') return send(res, 202, undefined, { location: url.href });
      if (op.status === 'Failed') throw new ArmError(500, op.error!.code, op.error!.message);
      return send(res, 204);
    }

    // The Compute usages API: the subscription's vCPU quotas in the cluster's region (capacity.ts).
    if (lower === computeUsages) {
      if (method !== 'GET') throw new ArmError(405, 'MethodNotAllowed', `${method} is not supported on usages.`);
      return send(res, 200, usagesResponse(pools.allProperties(), pools.capacity));
    }
    if (!lower.startsWith(clusterId.toLowerCase())) {
      const rg = `/subscriptions/${cluster.subscriptionId}/resourceGroups/${cluster.resourceGroup}`.toLowerCase();
      if (!lower.startsWith(rg)) {
        throw new ArmError(404, 'ResourceGroupNotFound', `Resource group '${path.split('/')[4] ?? ''}' could not be found.`);
      }
      throw new ArmError(404, 'ResourceNotFound', `The Resource '${path}' was not found.`);
    }
    const rest = path.slice(clusterId.length).split('/').filter(Boolean);
    if (rest.length === 0 && method === 'GET') {
      return send(res, 200, {
        id: clusterId,
        name: cluster.clusterName,
        type: 'Microsoft.ContainerService/ManagedClusters',
        location: cluster.location,
        properties: {
          provisioningState: 'Succeeded',
          powerState: { code: 'Running' },
          kubernetesVersion: cluster.kubernetesVersion,
          currentKubernetesVersion: cluster.kubernetesVersion,
          maxAgentPools: pools.maxAgentPools,
          agentPoolProfiles: pools.names().map((n) => ({ name: n, ...pools.resource(clusterId, n)!.properties })),
          // AKS leaves networkPolicy out when none was chosen.
          networkProfile: {
            networkPlugin: 'azure',
            ...(profile.networkPolicy === 'none' ? {} : { networkPolicy: profile.networkPolicy }),
            ...(profile.networkPolicy === 'cilium' ? { networkDataplane: 'cilium' } : {}),
          },
          securityProfile: { workloadIdentity: { enabled: profile.workloadIdentity } },
          oidcIssuerProfile: { enabled: profile.oidcIssuer, ...(profile.oidcIssuer ? { issuerURL: `https://${cluster.location}.oic.prod-aks.azure.com/00000000-0000-0000-0000-000000000000/${cluster.clusterName}/` } : {}) },
        },
      });
    }
    if (rest[0]?.toLowerCase() !== 'agentpools' || rest.length > 2) {
      throw new ArmError(404, 'ResourceNotFound', `The Resource '${path}' was not found.`);
    }
    if (rest.length === 1) {
      if (method !== 'GET') throw new ArmError(405, 'MethodNotAllowed', `${method} is not supported on agentPools.`);
      return send(res, 200, { value: pools.names().map((n) => pools.resource(clusterId, n)) });
    }

    const name = rest[1]!;
    if (!poolNamePattern.test(name)) {
      throw new ArmError(
        400,
        'InvalidParameter',
        `Agent pool name '${name}' is invalid: it must start with a lowercase letter, contain only lowercase letters and numbers, and be at most 12 characters long.`,
      );
    }
    const fault = faults.take(method, name, ['throttle', 'server-error']);
    if (fault) throw Faults.responseError(fault, undefined, cluster.location);

    const asyncOperation = (id: string) => `https://${req.headers.host}${locationBase}/operations/${id}?api-version=${apiVersion}`;
    switch (method) {
      case 'GET': {
        const pool = pools.resource(clusterId, name);
        if (!pool) throw new ArmError(404, 'NotFound', `Could not find agent pool ${name} in managed cluster ${cluster.clusterName}.`);
        return send(res, 200, pool);
      }
      case 'PUT': {
        const body = await readJson(req);
        const properties = (body as { properties?: { vmSize?: string; availabilityZones?: string[] } } | undefined)?.properties;
        const vmSize = properties?.vmSize;
        sent.set(req, {
          propertiesSent: Object.keys(properties ?? {}).sort(),
          ...(vmSize ? { vmSize } : {}),
          ...(properties?.availabilityZones ? { availabilityZones: properties.availabilityZones } : {}),
        });
        const refused = faults.take(method, name, ['quota', 'sku-not-available']);
        if (refused) throw Faults.responseError(refused, vmSize, cluster.location);
        const operationFault = faults.take(method, name, ['capacity', 'preemption']);
        const failure = operationFault ? operationFaultError(operationFault, randomUUID()) : undefined;
        const { created, op } = pools.put(name, body, failure, req.headers['if-match']);
        return send(res, created ? 201 : 200, pools.resource(clusterId, name), {
          'azure-asyncoperation': asyncOperation(op.id),
        });
      }
      case 'DELETE': {
        const op = pools.delete(name, req.headers['if-match']);
        if (!op) return send(res, 204);
        return send(res, 202, undefined, {
          location: `https://${req.headers.host}${locationBase}/operationresults/${op.id}?api-version=${apiVersion}`,
        });
      }
      default:
        throw new ArmError(405, 'MethodNotAllowed', `${method} is not supported on an agent pool.`);
    }
  }

  const handler = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', `https://${req.headers.host ?? 'localhost'}`);
    const isControl = url.pathname.startsWith('/_emulator/');
    try {
      await (isControl ? control(req, res, url.pathname) : arm(req, res, url));
    } catch (err) {
      const armError = err instanceof ArmError ? err : new ArmError(500, 'InternalServerError', String(err));
      send(res, armError.status, armError.body(), armError.headers);
    }
    if (!isControl) {
      requests.push({ method: req.method ?? 'GET', path: url.pathname, status: res.statusCode, at: Date.now(), ...sent.get(req) });
      if (requests.length > 10_000) requests.splice(0, requests.length - 10_000);
    }
  };
  return handler;
}
