// `npm run setup:temporal`: registers the project's search attributes on a Temporal server
// (self-hosted; on Temporal Cloud add them in the namespace settings instead). Idempotent.
// The local stack's dev server gets them at start-up; this is for every other server.
import { Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { projectSearchAttributes } from '../workflows/search-attributes.js';

export async function registerSearchAttributes(connection: Connection, namespace: string): Promise<{ added: string[]; present: string[] }> {
  const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
  const present = projectSearchAttributes.filter((key) => customAttributes?.[key.name] !== undefined).map((k) => k.name);
  const missing = projectSearchAttributes.filter((key) => !present.includes(key.name));
  if (missing.length > 0) {
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(missing.map((key) => [key.name, proto.temporal.api.enums.v1.IndexedValueType[`INDEXED_VALUE_TYPE_${key.type}`]])),
    });
  }
  return { added: missing.map((k) => k.name), present };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const address = process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
  const namespace = process.env.TEMPORAL_NAMESPACE ?? 'default';
  const connection = await Connection.connect({ address });
  try {
    const { added, present } = await registerSearchAttributes(connection, namespace);
    console.log(`Search attributes on ${address} (${namespace}): added [${added.join(', ')}], already present [${present.join(', ')}]`);
  } finally {
    await connection.close();
  }
}
