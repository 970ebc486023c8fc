"""Inference inputs and the generate pipeline: read a source photo and a driver (video file,
frame folder or MUG-layout take), find and crop the faces, retarget the driver's expression onto
the source face, render structure maps and animate the source with a trained model."""
