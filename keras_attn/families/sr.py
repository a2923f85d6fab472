"""The super-resolution family's entry of the registry (`keras_attn.families`)."""

from __future__ import annotations

import pathlib

from keras_attn.families.base import (
    Family,
    Lazy,
    _image_predict,
    _no_input_check,
    _output_ranks,
    _takes_moving_and_fixed,
    _to_8bit,
    format_fixed,
    register,
)


def _detect_sr(model) -> bool:
    return (
        not _takes_moving_and_fixed(model)
        and _output_ranks(model) == [4]
        and model.inputs[0].shape[-1] == 3
    )


def _evaluate_sr(predictor, dataset: str, split: str, *, data_dir=None, progress=None, **_):
    from keras_attn.models.super_resolution import model_scale
    from keras_attn.training import evaluation

    scale = model_scale(predictor)
    pairs = evaluation.held_out_pairs(scale, dataset, split, data_dir=data_dir)
    runner = progress(predictor, len(pairs), "image") if progress else predictor
    model_scores = evaluation.evaluate_super_resolution(runner, scale, pairs)
    bicubic = evaluation.evaluate_super_resolution(None, scale, pairs)
    result = dict(
        scale=scale,
        **model_scores.as_dict(),
        bicubic_psnr_y_db=bicubic.psnr_y,
        bicubic_ssim_y=bicubic.ssim_y,
    )
    result["per_image"] = {
        name: {**scores, "bicubic_psnr_y_db": bicubic.per_image[name]["psnr_y_db"]}
        for name, scores in model_scores.per_image.items()
    }
    return result


def _print_sr(result: dict) -> None:
    print(
        f"{result['model']}: x{result['scale']} on {result['dataset']} {result['split']} "
        "(PSNR-Y dB / SSIM-Y)"
    )
    print(f"  {'image':<24} {'model':>16} {'bicubic PSNR':>13}")
    for name, scores in result["per_image"].items():
        print(
            f"  {name:<24} {scores['psnr_y_db']:>7.2f} / {scores['ssim_y']:.4f} "
            f"{scores['bicubic_psnr_y_db']:>13.2f}"
        )
    print(
        f"  {'mean':<24} {result['psnr_y_db']:>7.2f} / {result['ssim_y']:.4f} "
        f"{result['bicubic_psnr_y_db']:>13.2f}"
    )


def _predict_sr(
    predictor, inputs, images: dict, output, *, tile=None, overlap=16, self_ensemble=False, **_
) -> None:
    """Writes `<stem>_x<scale>.png` of every image into `output`."""
    from keras_attn.models.super_resolution import model_scale, upscale
    from keras_attn.utils.images import write_png

    scale = model_scale(predictor)
    for path, image in images.items():
        upscaled = _to_8bit(
            upscale(
                predictor,
                image,
                tile=tile,
                overlap=overlap,
                progress=bool(tile),
                self_ensemble=self_ensemble,
            )
        )
        target = output / f"{pathlib.Path(path).stem}_x{scale}.png"
        write_png(target, upscaled)
        (height, width), (new_height, new_width) = image.shape[:2], upscaled.shape[:2]
        print(
            f"{path}: {width}x{height} -> {new_width}x{new_height} (x{scale}, "
            f"{predictor.source}); wrote {target}"
        )


def _sr_metric(metrics: dict) -> str:
    return (
        f"PSNR-Y {format_fixed(metrics.get('psnr_y_db'), 2, ' dB')} "
        f"({format_fixed(metrics.get('gain_over_bicubic_db'), 2, ' dB', sign=True)} over bicubic)"
    )


def _sr_calibration(input_shape, *, count=32, data_dir=None, seed=0, dataset=None) -> list:
    """Random `64 x 64` crops of the bundled training photos."""
    import numpy as np

    from keras_attn import data

    rng = np.random.default_rng(seed)
    photos = [data.load_photo(name) for name in data.photo_names("train")]
    samples = []
    for index in range(count):
        photo = photos[index % len(photos)].astype("float32") / 255.0
        top = rng.integers(0, photo.shape[0] - 64 + 1)
        left = rng.integers(0, photo.shape[1] - 64 + 1)
        samples.append([photo[None, top : top + 64, left : left + 64]])
    return samples


SR = register(
    Family(
        name="sr",
        title="super-resolution",
        detect=_detect_sr,
        output_names=("upscaled",),
        default_dataset=("bundled_photos", "validation"),
        make_predict=_image_predict,
        evaluate=_evaluate_sr,
        print_evaluation=_print_sr,
        writes_next_to_input=True,
        check_predict_inputs=_no_input_check,
        predict_files=_predict_sr,
        held_out_metric=_sr_metric,
        calibration_data=_sr_calibration,
        demo_figure=Lazy("keras_attn.demo:_super_resolution"),
        task_helper=Lazy("keras_attn.models:upscale"),
    )
)
