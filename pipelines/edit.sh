#!/bin/sh
# edit.sh - MaskGIT's editing recipe on the VQGAN's 2D tokens (upstream.md
# C.5): inpainting, outpainting and class-conditional editing of a few
# images. Called by pipelines/edit.mk; every setting comes from the
# environment:
#   KIND        inpaint | outpaint | edit
#   CLASS       edit: the target class (null: the null class); inpaint and
#               outpaint keep each image's own label, and an image without
#               one (a bare PNG) is decoded with the null class
#   IMAGE       PNG file, directory or archive (img2patch); empty: the first
#               N images of DATA_TEST
#   DATA_TEST N SIZE CHANNELS BACKGROUND   the images, SIZE x SIZE
#   BOX         x,y,w,h in pixels; mask(1) adds MaskGIT's 1-token margin;
#               outpaint masks the outside of the grown box
#   VOCAB       the codebook size
#   VQGAN       directory of {encode,vq,decode}.ema.safetensors
#   MASKGIT     directory of transformer.ema.safetensors
#   STEPS START JAX decoding from step START of STEPS (MaskGIT: 2 of 12)
#   SEED THREADS BIN OUT
# Writes OUT/: tokens.tz (the images with their ids), edit.tz (image,
# image_masked, ids, region, recon_raw, recon = the composite, labels),
# grid.png (rows: input, masked input, raw decode, composite) and png/KEY.png
# (the composites). The same settings give the same bytes.
. "$(dirname "$0")/lib.sh"
PATH="$BIN:$PATH"
case "$KIND" in
inpaint) REGION= ;;
outpaint) REGION=--outside ;;
edit)
    if [ "$CLASS" = null ]; then REGION=--null; else REGION="--class $CLASS"; fi ;;
*) echo "edit.sh: KIND '$KIND' is not inpaint, outpaint or edit" >&2; exit 2 ;;
esac
mkdir -p "$OUT"
W="$OUT/work"
rm -rf "$W" && mkdir "$W"

# the images, then their tokens (vq looks ids up again only without latent)
if [ -n "${IMAGE:-}" ]; then
    img2patch -b 64 --channels "$CHANNELS" --background "$BACKGROUND" --size "$SIZE" --resize "$IMAGE" -o "$W/in.tz"
else
    tz head --samples "$N" "$DATA_TEST" -o "$W/in.tz"
fi
n=$(samples_of "$W/in.tz")
[ "$n" -gt 0 ] || { echo "edit.sh: no images" >&2; exit 1; }
encode -w "$VQGAN/encode.ema.safetensors" -j "$THREADS" < "$W/in.tz" |
    vq -w "$VQGAN/vq.ema.safetensors" -j "$THREADS" | tz drop latent,quant -o "$OUT/tokens.tz"

# the region (+ margin) masked, the target class, decoding metadata
mask --box "$BOX" --image-size "$SIZE" --vocab "$VOCAB" $REGION --steps "$STEPS" --start-step "$START" \
    -i "$OUT/tokens.tz" -o "$W/ids-$START.tz"
decode_loop "$W/ids-$START.tz" "$W/ids-$STEPS.tz" "-w $MASKGIT/transformer.ema.safetensors -j $THREADS" \
    "--semantics jax --seed $SEED"

# pixels, and the decode blended over the input
vq -w "$VQGAN/vq.ema.safetensors" -j "$THREADS" < "$W/ids-$STEPS.tz" |
    decode -w "$VQGAN/decode.ema.safetensors" -j "$THREADS" |
    mask --composite | tz drop quant,mask -o "$W/edit.tz"
# a stage that failed in a pipe leaves a short (or empty, and valid) stream
got=$(samples_of "$W/edit.tz")
[ "$got" = "$n" ] || { echo "edit.sh: $got of $n images came through: a stage failed" >&2; exit 1; }
mv "$W/edit.tz" "$OUT/edit.tz"
rm -rf "$OUT/png"
patch2img -f recon -d "$OUT/png" < "$OUT/edit.tz"
patch2img -f image,image_masked,recon_raw,recon --cols $((n < 8 ? n : 8)) --grid "$OUT/grid.png" < "$OUT/edit.tz"
rm -rf "$W"
echo "$KIND: $OUT/grid.png (rows: input, masked, decoded, composite)"
