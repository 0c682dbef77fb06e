"""Task families: what differs between tasks, asked of the task's family by every stage.

One pipeline, several heads. A task family brings its data format and label checks, its
built-in data, its head and loss, its batches and probe shapes, its metrics and baselines,
its plots and error report; everything else (splitting, leakage checks, the data card,
the probe's search, checkpoints and resume, early stopping, tuning) is shared. The family
of a run is the task name the preprocess stage stores in ``meta.json`` (``DataMeta.task``),
chosen by ``data.task`` (``auto``: a list label is ``token``, else ``sequence``) or fixed by
a built-in source (``data.source: builtin:<name>``).

Layout: four sides, one registry module each, so that a stage imports only the side it
needs (dvc.yaml's code deps are a stage's imports: an edit to evaluation code must not
retrain the model)::

    families/names.py     TASKS: every family's name (read_meta and data.task check it)
    families/data.py      DataFamily, data_family(task), Builtin        preprocess, tokenize
    families/model.py     ModelFamily, model_family(task)               every stage with a model
    families/train.py     TrainFamily, train_family(task)               probe, lr_range, train
    families/evaluate.py  EvalFamily, eval_family(task), *Job, *Result  evaluate, error_analysis
    families/predict.py   PredictFamily, predict_family(task)           `nlpflow predict`
    families/<name>/{data,model,train,evaluate}.py   one family's four sides

A family's module of one side imports nothing of another side's stages (``data.py`` no
training or evaluation code; ``model.py`` only transformers; ``train.py`` no evaluation
code). Adding a family: write the four classes (subclass the base, set ``name``), add the
name to ``names.TASKS`` and the class to the list in each registry function, add any
params section it needs (``data.<name>`` for its built-in data), then run
``nlpflow dvc-deps --write``.

Data side (:class:`~nlpflow.families.data.DataFamily`), called by ``data/prepare.py`` and
``data/tokenize.py`` (defaults: sequence classification, a label string per row):

- ``read_file(path, data_params, bad)`` -> rows of one local file (when ``data.task`` names
  the family; default: CoNLL by its tags, else ``read_rows``); ``fields(data_params)`` ->
  the processed rows' ``(text_fields, label_field)`` (multiple choice: its own columns
  ``context``, ``options``, ``label``).
- ``builtins()`` -> ``{"builtin:<name>": Builtin(generate(data_params, seed) -> rows,
  text_fields, label_field)}``: generated data, seeded, no download.
- ``read_file(path, params, bad)`` -> the rows of one data file when ``data.task`` names
  the family, or None (the default) for the shared reader (a label string per row; CoNLL).
- ``normalise(raw, label_field, origin, bad)``: check and fix raw rows in place before
  splitting (``raw``: rows per part, ``"all"`` or a split; ``origin[part]``: its file;
  token: IOB1 -> IOB2; regression: labels parsed as numbers, a bad one reported with
  ``bad.report(path, "line", line, column, reason)``); returns extra ``meta.json`` fields.
- ``strata(rows, label_field)`` -> one stratum string per row (``""``: random split).
- ``clean(rows, text_fields, label_field, cleaning)`` -> ``(rows, counts)`` or None (no
  cleaning: token tasks keep word lists aligned).
- ``labels_of(rows, label_field)`` -> every label string (the data card counts them).
- ``label_names(splits, label_field, origin)`` -> ``meta.json``'s ``label_names``: class
  names (id i = ``label_names[i]``), or for a family without classes the names of the
  model's outputs (regression: one). Validates labels: a UserError naming
  ``origin[split]`` (the file), the row (``row["_line"]``) and the value.
- ``warnings(names, splits, label_field)`` -> sentences for the console and data card;
  ``example_group(row, label_field)``: the data card's heading of a train example.
- ``text_feature()``, ``label_feature(label_names)``, ``label_values(rows, label_field,
  label_names)``: the processed columns (``datasets`` features and values).
- ``text_features(text_fields)``: every processed text field's feature (default: each
  ``text_feature()``; multiple choice: a string and a list of strings).
- ``tokenized_label_feature(processed_feature)``: the tokenized ``labels`` feature.
- ``input_features(segments)`` and ``input_columns(enc, specials, unk_id)``: tokenized
  inputs that are not one id list per row (multiple choice: N per row) and their per-row
  figures; None for the default. ``lengths(encoder, columns, where)``: untruncated lengths
  for ``tokenizer.max_length: auto`` (multiple choice: one per pair).
- ``encode(encoder, columns, labels, where, first)`` -> ``(Encoded, labels column)``: one
  Arrow batch through the one :class:`~nlpflow.modeling.encoder.Encoder` (``columns``: a
  Python list per text field; ``labels``: the batch's processed ``label`` Arrow array;
  returns an Arrow array, or a Python list of per-token label lists).
- ``encoder_mode``: ``"sequence"`` (strings) or ``"token"`` (pre-split words);
  ``has_classes``: whether label distributions apply in the data card.
- ``read_file(path, params, bad)`` -> rows of a file in the family's own format (with
  ``data.task`` naming the family; QA: SQuAD JSON), or None for the usual readers.
- ``split_figures(rows, label_field)`` -> the family's own figures of a split in
  ``metrics/preprocess.json`` (None: label counts or a numeric target's distribution) and
  ``card_lines(report)`` -> their markdown in the data card.
- ``encode_splits(dataset, tokenizer, max_length, params, where, segments)`` -> ``(DatasetDict,
  {"splits", "warnings"}, sample markdown)`` for a family whose tokenized rows are not one
  per processed row (QA: windows of each question); None: the per-row :meth:`encode`.

Model side (:class:`~nlpflow.families.model.ModelFamily`), called by
``modeling/build.py::build_model`` and ``evaluation/predict.py::load_classifier``:

- ``auto_class()`` / ``bert_class()``: the transformers class for a pretrained encoder /
  a BERT built from a config (``AutoModelForSequenceClassification``,
  ``AutoModelForTokenClassification``, ``AutoModelForMultipleChoice``...);
  ``from_scratch(model_params, tokenizer, head, max_length)``: the model when
  ``model.name_or_path`` is empty (default: a small BERT of ``bert_class``; a seq2seq or
  causal-LM family builds its own).
- ``config_kwargs(label_names)`` -> ``num_labels``, ``id2label``, ``label2id`` (and e.g.
  ``problem_type``) for the config.
- ``check_config(config, label_names, model_dir)``: a saved model against the data.

Training side (:class:`~nlpflow.families.train.TrainFamily`), called by
``training/setup.py`` (build_run, load_splits), ``training/validation.py``,
``training/loop.py`` (health), ``training/lr_range.py`` and ``training/probe.py``:

- ``padded_split(split, pad_id)`` -> a :class:`~nlpflow.training.data.PaddedSplit` (or
  subclass): ``lengths`` (N,) int64 tokens per row, ``batch(index, device)`` -> the model's
  keyword arguments plus ``labels``, ``targets(index)`` -> the counted labels (flat),
  ``subset(index)``, ``len``. Own inputs (choices (B, N, T), QA windows) = own subclass.
- ``criterion(train, label_names, train_set, overfit)`` -> the loss object (the interface
  of :class:`~nlpflow.training.loss.Criterion`): ``sum(output, labels)`` summed loss terms
  of a micro-batch (``output``: the model's output object, so a family reads
  ``.logits``, ``.start_logits``... as it needs), ``denominator(targets)``,
  ``correct(output, labels)`` a 0-dim tensor, ``measures_accuracy``, ``to(device)``. The
  step divides each micro-batch's sum by the whole step's denominator.
- ``check_loss(train.loss)``; ``prepare_model(model, criterion)``: once on the fresh model
  (e.g. store a target's standardisation in ``model.config``).
- ``configure(train, tokenizer)``: once per run, before ``check_monitor`` (text2text reads
  ``train.generation_sample`` and keeps the tokenizer to decode its validation sample).
- ``metric_names(label_names)``: validation metrics, ``loss`` first (what early stopping
  may monitor; ``check_monitor`` raises for others); ``eval_columns(label_names)``: the
  columns of ``plots/train/epochs.tsv``.
- ``validate(model, split, batch_size, device, criterion, dist, label_names, precision)``
  -> ``{"loss": ..., <metric>: ...}`` the same on every process.
- ``uniform_classes(label_names)``: K of the ln(K) initial-loss check, or None.
- ``probe_batch(row, size, num_labels, with_token_type_ids)`` -> the worst-case batch
  (``row``: (1, T) token ids; default (B, T) inputs plus ``probe_labels``) and
  ``probe_criterion()``, its loss.

Evaluation side (:class:`~nlpflow.families.evaluate.EvalFamily`), called by
``evaluation/evaluate.py`` (evaluate_model, write_evaluation), ``stages/evaluate.py`` and
``stages/error_analysis.py``:

- ``evaluate(EvaluateJob)`` -> :class:`~nlpflow.evaluation.evaluate.Evaluation`: per split
  the prediction records (``data/predictions/<split>.jsonl``) and metrics with ``n``,
  ``ci`` (bootstrap intervals at ``evaluate.confidence_level``) and ``baselines`` (each
  with ``margin``), as ``metrics/evaluate.json`` holds them.
- ``write_plots(evaluation, directory)``: plot data and PNGs (published atomically).
- ``summary_keys``, ``higher_is_better``, ``summary_line(split, metrics)``: the console;
  ``one_row_per_example``: data/tokenized lines up row for row with data/processed
  (checked before ``evaluate``; False for QA windows).
- ``load_predictions(path, meta)`` and ``error_analysis(ErrorAnalysisJob)`` ->
  ``ErrorAnalysisResult(report markdown, metrics, summary line)``.

Prediction side (:class:`~nlpflow.families.predict.PredictFamily`), called by
``nlpflow predict`` (:mod:`nlpflow.predict`; defaults: sequence classification):

- ``inputs(row, loaded)`` -> a raw row of the new file as model inputs (one value per text
  field, cleaned as in training), or a ``Reject`` (field and reason: the row is listed in
  the rejects file, never dropped silently);
- ``predict(items, loaded)`` -> per row the keys of ``output_keys`` (sequence:
  ``prediction``, ``score``, ``top_k``; token: a tag and score per word) and whether the
  input was truncated; ``notes()`` -> console sentences.
"""
