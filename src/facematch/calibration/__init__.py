"""A model's calibrated operating points, in one package: :mod:`.store` reads and writes them (inside a
checkpoint, a sidecar, the calibration folder, or ``shipped/`` with facematch) and sits at the models layer;
:mod:`.compute` finds them on labelled pairs through the evaluation job. Import the module you need: this
package imports neither, so the store stays importable from the layers below evaluation."""
