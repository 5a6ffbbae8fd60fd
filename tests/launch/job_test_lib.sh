# Shared by the shell system tests of the cluster scripts (hostfile_test.sh,
# slurm_test.sh): a small dataset and a reference run of `flexmoe train --workers 2`.
# Needs FLEXMOE, SOURCE, T and a fail function.

# The config flags of every run: the quickstart config, small.
common=(--config "$SOURCE/configs/quickstart.textproto" --set "data.input=$T/raw"
        --set "data.prepared_dir=$T/prepared" --set synth.num_samples=360
        --set training.warmup_epochs=1 --set training.batch_size=16
        --set model.hidden_dim=32 --set model.patches=4 --set metrics.log_every_steps=0)

# Generates and prepares the dataset, then trains EPOCHS epochs on 2 local workers into
# $T/local.
prepare_and_train_locally() {
  "$FLEXMOE" synth "${common[@]}" >/dev/null
  "$FLEXMOE" prepare "${common[@]}" >/dev/null 2>&1
  "$FLEXMOE" train --workers 2 --threads 1 "${common[@]}" --set "training.epochs=$1" \
    --set "run.dir=$T/local" >"$T/local.out" 2>&1 || fail "the local run failed"
}

# The "test" record's test metrics of the run in directory $1.
test_metrics() {
  python3 -c 'import json,sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["event"] == "test": print(json.dumps(r["test"], sort_keys=True))' "$1/metrics.jsonl"
}
