"""The classifier family's entry of the registry (`keras_attn.families`)."""

from __future__ import annotations

import json

from keras_attn.families.base import (
    Family,
    Lazy,
    _image_predict,
    _no_input_check,
    _output_ranks,
    _takes_moving_and_fixed,
    format_fixed,
    register,
)


def _detect_classifier(model) -> bool:
    return not _takes_moving_and_fixed(model) and _output_ranks(model) == [2]


def _evaluate_classifier(predictor, dataset: str, split: str, *, data_dir=None, progress=None, **_):
    from keras_attn.training import evaluation

    test_data = evaluation.classifier_test_data(
        predictor.input_shape, dataset, split, data_dir=data_dir
    )
    runner = progress(predictor, None, "batch") if progress else predictor
    return evaluation.evaluate_classifier(runner, test_data)


def _print_classifier(result: dict) -> None:
    print(
        f"{result['model']}: accuracy {result['accuracy']:.4f} "
        f"({result['examples'] - result['errors']}/{result['examples']}) on {result['dataset']} "
        f"{result['split']}"
    )


def classifier_input(image, input_shape: tuple):
    """One image's pixels preprocessed as in training (channels converted, bilinear resize):
    a float32 `(1, S, S, C)` batch in [0, 1] for a classifier of `input_shape` `(S, S, C)`."""
    import numpy as np

    from keras_attn.data.classification import ClassificationConfig, preprocess
    from keras_attn.utils.images import as_float_image

    pixels = np.round(as_float_image(image, "image") * 255.0).astype("uint8")
    config = ClassificationConfig(image_size=input_shape[0], channels=input_shape[-1])
    return (preprocess(pixels, config).numpy().astype("float32") / 255.0)[None]


def _predict_classifier(predictor, inputs, images: dict, output, *, top_k=3, **_) -> None:
    """Prints the `top_k` classes of every image; writes `predictions.json` into `output`."""
    import numpy as np

    classes = (predictor.card or {}).get("classes")
    predictions = {}
    for path, image in images.items():
        probabilities = predictor(classifier_input(image, predictor.input_shape))[0]
        order = np.argsort(probabilities)[::-1][:top_k]
        top = [
            {"class": classes[i] if classes else int(i), "probability": float(probabilities[i])}
            for i in order
        ]
        predictions[path] = top
        shown = ", ".join(f"{entry['class']} ({entry['probability']:.3f})" for entry in top)
        print(f"{path}: {shown}")
    if output is not None:
        target = output / "predictions.json"
        target.write_text(json.dumps(predictions, indent=1))
        print(f"wrote {target}")


def _classifier_metric(metrics: dict) -> str:
    accuracy = metrics.get("accuracy")
    shown = accuracy * 100 if isinstance(accuracy, (int, float)) else None
    return f"accuracy {format_fixed(shown, 2, ' %')}"


def _classifier_calibration(input_shape, *, count=32, data_dir=None, seed=0, dataset=None):
    """The first `count` training images of `dataset` (default: the family's)."""
    from keras_attn.training import evaluation

    dataset = dataset or CLASSIFIER.default_dataset[0]
    train = evaluation.classifier_test_data(
        input_shape, dataset, "train", batch_size=count, data_dir=data_dir
    )
    images = next(iter(train))[0].numpy()
    return [[images[index : index + 1]] for index in range(len(images))]


CLASSIFIER = register(
    Family(
        name="classifier",
        title="image classifier",
        detect=_detect_classifier,
        output_names=("probabilities",),
        default_dataset=("bundled_digits", "test"),
        make_predict=_image_predict,
        evaluate=_evaluate_classifier,
        print_evaluation=_print_classifier,
        writes_next_to_input=False,
        check_predict_inputs=_no_input_check,
        predict_files=_predict_classifier,
        held_out_metric=_classifier_metric,
        calibration_data=_classifier_calibration,
        demo_figure=Lazy("keras_attn.demo:_classifier"),
        task_helper=Lazy("keras_attn.inference:classify"),
    )
)
