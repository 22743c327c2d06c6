"""Input and output files: video and image folders in, clip files out."""
