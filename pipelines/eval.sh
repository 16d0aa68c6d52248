#!/bin/sh
# eval.sh - the evaluation classifier and the figures made with it.
#
#   sh pipelines/eval.sh train
#       Train the ViT classifier (encode --arch vit-classifier) on the training
#       set's labels in stream mode (pipelines/train.sh: resumable), then write
#       RUN/eval.tsv: test accuracy and cross-entropy, and fd_train_test, the
#       Frechet distance between as many training images as the test set has
#       and the test set (what two real samples score: the floor of every FD);
#       RUN/test.fd.safetensors: the real test set's feature statistics.
#       Environment: RUN DATA_TRAIN DATA_TEST CHANNELS CLASSES STEPS BATCH LR
#       WARMUP CKPT_EVERY SEED THREADS BIN; SET (more --set KEY=VALUE of the
#       model, optional)
#
#   sh pipelines/eval.sh score
#       Score a stream of images against the real test set; prints TSV lines
#       "fd<TAB>X" (and "acc<TAB>Y" when LABEL is set).
#       Environment: CLASSIFIER (the classifier's run directory), STREAM (a .tz
#       file), FIELD (its images, F32 [B,C,32,32]; default recon), LABEL (a
#       field of class ids to check the classifier's predictions against,
#       e.g. label for class-conditional samples; default none), REF (the
#       statistics to compare with; default CLASSIFIER/test.fd.safetensors),
#       FLOOR (optional: a stream of real images, field image, e.g. the
#       training set: also print "fd_floor<TAB>Z", the FD of as many of its
#       images as STREAM has, which is what real images score at that sample
#       size; the FD of a few samples is biased upwards), THREADS BIN.
#
# The numbers are FID-like, not FID: see the FD section of loss(1).
. "$(dirname "$0")/lib.sh"
PATH="$BIN:$PATH"
THREADS=${THREADS:-2}

# The images of field $2 of stream $1 renamed to image, with the fields in $3
# (comma-separated, may be empty) alongside, record by record.
as_images() {
    if [ "$2" = image ]; then tz pick "image${3:+,$3}" "$1"
    else tz pick "$2${3:+,$3}" "$1" | tz rename "$2=image"; fi
}

case "${1:-}" in
train)
    mkdir -p "$RUN/init"
    init_once "$RUN/init/cls.safetensors" encode --arch vit-classifier --set channels="$CHANNELS" \
        --set classes="$CLASSES" ${SET:-} --seed "$SEED"
    ENDLR=$(echo "$LR" | awk '{print $1/20}')
    OPT="--lr $LR --betas 0.9,0.999 --wd 0.05 --schedule cosine --warmup $WARMUP --total $STEPS --end-lr $ENDLR"
    OPT="$OPT --clip 1.0"
    RUN=$RUN FEED="$DATA_TRAIN" CHAIN="encode:cls" LOSS="ce --target label --label-smoothing 0.1" \
        OPT="$OPT" TITLE="classifier ($(basename "$RUN"))" sh "$(dirname "$0")/train.sh"
    W=$RUN/cls.ema.safetensors
    encode -w "$W" -j "$THREADS" < "$DATA_TEST" |
        loss --eval ce acc --target label fd --fd-out "$RUN/test.fd.safetensors" > "$RUN/eval.tmp"
    # ce's mean over records, the accuracy over samples
    awk -F '\t' '$1 == "acc" {a = $2} $1 == "ce" {c = $2} END {print "test_acc\t" a; print "test_ce\t" c}' \
        "$RUN/eval.tmp" > "$RUN/eval.tsv"
    tz head --samples "$(samples_of "$DATA_TEST")" "$DATA_TRAIN" | encode -w "$W" -j "$THREADS" |
        loss --eval fd --fd-ref "$RUN/test.fd.safetensors" |
        awk -F '\t' '$1 == "fd" {print "fd_train_test\t" $2}' >> "$RUN/eval.tsv"
    rm -f "$RUN/eval.tmp"
    echo "classifier: $(tr '\t\n' '= ' < "$RUN/eval.tsv")"
    ;;
score)
    : "${CLASSIFIER:?CLASSIFIER: the classifier's run directory}" "${STREAM:?STREAM: a .tz file}"
    REF=${REF:-$CLASSIFIER/test.fd.safetensors}
    ACC=
    [ -z "${LABEL:-}" ] || ACC="acc --target $LABEL"
    as_images "$STREAM" "${FIELD:-recon}" "${LABEL:-}" |
        encode -w "$CLASSIFIER/cls.ema.safetensors" -j "$THREADS" |
        loss --eval fd $ACC --fd-ref "$REF" | grep -E '^(fd|acc)	'
    if [ -n "${FLOOR:-}" ]; then
        tz head --samples "$(samples_of "$STREAM")" "$FLOOR" |
            encode -w "$CLASSIFIER/cls.ema.safetensors" -j "$THREADS" |
            loss --eval fd --fd-ref "$REF" | sed -n 's/^fd	/fd_floor	/p'
    fi
    ;;
*)
    echo "usage: sh pipelines/eval.sh train|score (settings in the environment)" >&2
    exit 2
    ;;
esac
