// One local certificate authority for the stack. kube-apiserver, the registry and the AKS
// emulator all serve TLS from a leaf it signs; clients trust it through NODE_EXTRA_CA_CERTS
// (the Azure SDK refuses plain http) and the kubeconfig's certificate-authority.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface StackCertificates {
  caCert: string;
  serverCert: string;
  serverKey: string;
  /** Key pair kube-apiserver signs and verifies service-account tokens with. */
  serviceAccountKey: string;
}

export async function ensureCertificates(certsDir: string): Promise<StackCertificates> {
  const certs: StackCertificates = {
    caCert: join(certsDir, 'ca.crt'),
    serverCert: join(certsDir, 'server.crt'),
    serverKey: join(certsDir, 'server.key'),
    serviceAccountKey: join(certsDir, 'service-account.key'),
  };
  if (Object.values(certs).every((f) => existsSync(f))) return certs;

  mkdirSync(certsDir, { recursive: true });
  const caKey = join(certsDir, 'ca.key');
  const csr = join(certsDir, 'server.csr');
  const ext = join(certsDir, 'server.ext');
  writeFileSync(
    ext,
    [
      'basicConstraints=CA:FALSE',
      'keyUsage=digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth,clientAuth',
      'subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc',
    ].join('\n'),
  );
  const openssl = (...args: string[]) => run('openssl', args);
  await openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', caKey, '-out', certs.caCert,
    '-days', '3650', '-subj', '/CN=aks-finetune local stack CA');
  await openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', certs.serverKey, '-out', csr,
    '-subj', '/CN=localhost');
  await openssl('x509', '-req', '-in', csr, '-CA', certs.caCert, '-CAkey', caKey, '-CAcreateserial',
    '-out', certs.serverCert, '-days', '3650', '-extfile', ext);
  await openssl('genrsa', '-out', certs.serviceAccountKey, '2048');
  return certs;
}
