// The CLI's usage text: `aks-finetune --help` prints it, and docs/cli-reference.md is generated
// from it (`npm run docs`; test/docs.test.ts fails when the page is stale).
export const usage = `Usage: aks-finetune <command> [options]   (in this repository: npx aks-finetune, or npm run cli --)

  help [command], <command> --help               this text, or one command's part of it
  <command> ... --json (or --output json)        the command's result as one JSON document on stdout, for
                                                 scripts; with --follow, one JSON document per line (JSON Lines)
                                                 each time the status changes; errors stay text on stderr

  start <spec.yaml|.json> [--id ID] [--follow] [--image REF] [--push-secret NAME] [--output-volume PVC]
                  [--vm-size SIZE]
                                                 start a run from a request file or a KAITO Workspace file;
                                                 --image, --push-secret, --output-volume and --vm-size replace
                                                 the file's output image, push Secret, output volume and VM
                                                 size (a KAITO example's placeholders, without editing the file)
  status <workflow-id> [--follow]                a run's status with its training progress and loss chart;
                                                 --follow shows live progress until it ends
  list [--model M] [--method lora|qlora] [--phase P] [--repository R] [--limit N]
                                                 recent runs, newest first
  cancel <workflow-id>                           cancel a run (it cleans up before it ends)
  plan <spec.yaml|.json> [--hours H] [--quota] [--image REF] [--push-secret NAME] [--output-volume PVC]
                  [--vm-size SIZE]
                                                 dry run: validation, node pool, the GPU attempts in order,
                                                 Kubernetes objects and estimated GPU-hours and cost for H hours
                                                 of training (default 1); --quota reads the vCPU quota of each
                                                 attempt from ARM (GETs only); writes nothing anywhere. A KAITO
                                                 tuning ConfigMap file: checks its parameters
  schedule create|update <id> <spec> (--cron EXPR | --every DURATION) [--timezone TZ]
                  [--overlap skip|buffer-one|buffer-all|cancel-other|terminate-other|allow-all]
                  [--catchup-window D] [--jitter D]
                                                 retrain on a schedule; a run whose dataset is unchanged since
                                                 the schedule's last successful run is skipped
  schedule describe|pause|unpause|trigger|delete <id>
  schedule list
  doctor [--namespace NS[,NS...]] [--vm-size S[,S...]]
                                                 is the cluster ready for runs? Temporal and its search
                                                 attributes, the AKS cluster, workload identity, a network
                                                 policy engine, the NVIDIA device plugin, the worker's RBAC,
                                                 the run namespaces (default aks-finetune), the registry and
                                                 GPU quota for the sizes (default Standard_NC24ads_A100_v4):
                                                 each missing piece with its fix; reads only. Run it with the
                                                 worker's variables and a cluster operator's KUBECONFIG
  lineage <registry/repository@sha256:...>      the evaluations recorded for an adapter image (OCI artifacts
                                                 whose subject it is; the referrers API, else the referrers tag)
  endpoint create <name> --model M --vm-size S --namespace NS [--replicas N] [--max-loras N] [--max-lora-rank R]
                  [--idle-grace-seconds S] [--rollback-window-minutes M]
                                                 a long-lived inference endpoint (its workflow endpoint-<name>)
  endpoint describe <name>                       aliases → version → image, rollback targets, loaded versions,
                                                 scale, cold starts, GPU-minutes saved by scaling to zero
  endpoint scale <name> <replicas>|zero|wake     replica count; zero releases the GPU pool; wake brings it back
  endpoint rollback <name> <alias>               the alias back to the version it served before
  endpoint unload <name> <version>               unload a version no alias serves and no rollback keeps
  endpoint retire <name>                         delete the endpoint's Deployment, Service, ConfigMap and pool
  promote <request.yaml|.json> [--id NAME] [--follow]
                                                 promote an existing adapter image on an endpoint (promoteAdapter,
                                                 id promote-NAME): load, evaluate, gate, approval, switch, watch
  promotion <id> [--follow]                      a promotion's state, scores, gate and decisions
  approve|reject <id> [--by WHO] [--reason TEXT] decide a promotion that awaits approval; <id> is the
                                                 promotion's id or the fineTune run that started it

Environment: Temporal's environment configuration, as the worker reads it: a profile
(TEMPORAL_PROFILE, default "default") of the TOML file TEMPORAL_CONFIG_FILE (default
~/.config/temporalio/temporal.toml), overridden by TEMPORAL_ADDRESS (default 127.0.0.1:7233),
TEMPORAL_NAMESPACE (default default), TEMPORAL_API_KEY and TEMPORAL_TLS_*; and
TEMPORAL_TASK_QUEUE (default fine-tuning).

Exit codes: 0 success (with --follow: the run or promotion succeeded); 1 the run or promotion
failed, doctor found something missing, or Temporal, Azure or Kubernetes refused a call; 2 bad input (an unknown command or
option, a missing argument, an invalid request file), before anything is started.`;
