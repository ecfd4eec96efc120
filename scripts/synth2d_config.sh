# Sourced by the bench scripts: `synth2d_config SHARD_SIZE FILE` writes the build config of a `medgrain synth` 2D
# corpus in FILE's folder (triplets recipe, template writer).
synth2d_config() {
  cat > "$2" <<TOML
recipe = "triplets"
[output]
shard_size = $1
[[source]]
name = "synth-2d"
kind = "image-folder"
root = "synth/2d"
images = "images/*.png"
masks = "masks/{stem}.png"
metadata = "metadata.csv"
[generator]
kind = "template"
TOML
}
