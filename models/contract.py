"""The serving contract: every name that export, server, clients and tests agree on.

This module must stay free of third-party imports: the light ``client`` install uses it.
"""

from __future__ import annotations

# --- Tasks -----------------------------------------------------------------------------
TASK_EMBEDDING = "embedding"
TASK_CLASSIFICATION = "classification"
TASK_FILL_MASK = "fill-mask"
TASK_TOKEN_CLASSIFICATION = "token-classification"
TASKS = (TASK_EMBEDDING, TASK_CLASSIFICATION, TASK_FILL_MASK, TASK_TOKEN_CLASSIFICATION)

# --- Signatures ------------------------------------------------------------------------
SERVING_DEFAULT = "serving_default"  # raw text -> task outputs
# A TF2 signature cannot have an optional input (TF Serving feeds every placeholder), so
# sentence pairs get their own signature with the same outputs as serving_default.
SERVING_PAIR = "serving_pair"  # raw text + text_pair -> task outputs
PREPROCESS = "preprocess"  # raw text -> TF Hub preprocessing contract
ENCODE = "encode"  # TF Hub encoder contract
MLM = "mlm"  # fill-mask exports only: ids + positions -> logits
# Embedding exports of sentence-transformers checkpoints with prompts: one signature per
# prompt, SERVING_PROMPT_PREFIX + name, taking TEXT and answering like SERVING_DEFAULT for
# prompt + text.
SERVING_PROMPT_PREFIX = "serving_prompt_"

# --- Inputs ----------------------------------------------------------------------------
TEXT = "text"  # tf.string [batch]
TEXT_PAIR = "text_pair"  # tf.string [batch], optional second segment
INPUT_WORD_IDS = "input_word_ids"  # int32 [batch, seq]
INPUT_MASK = "input_mask"  # int32 [batch, seq]
INPUT_TYPE_IDS = "input_type_ids"  # int32 [batch, seq]
MASKED_LM_POSITIONS = "masked_lm_positions"  # int32 [batch, positions]

# --- Outputs ---------------------------------------------------------------------------
EMBEDDING = "embedding"  # float32 [batch, dim]
LOGITS = "logits"  # float32 [batch, num_labels]
PROBABILITIES = "probabilities"  # float32 [batch, num_labels]
LABELS = "labels"  # string [batch]: id2label of the arg-max
TOP_K_TOKENS = "top_k_tokens"  # string [batch, masks, k]
TOP_K_IDS = "top_k_ids"  # int32 [batch, masks, k]
TOP_K_SCORES = "top_k_scores"  # float32 [batch, masks, k] (softmax probabilities)
MASK_POSITIONS = "mask_positions"  # int32 [batch, masks], -1 where a text has fewer masks
POOLED_OUTPUT = "pooled_output"  # float32 [batch, hidden]
SEQUENCE_OUTPUT = "sequence_output"  # float32 [batch, seq, hidden]
DEFAULT_OUTPUT = "default"  # = pooled_output (TF Hub convention)
ENCODER_OUTPUTS = "encoder_outputs"  # float32 [layers, batch, seq, hidden]
MLM_LOGITS = "mlm_logits"  # float32 [batch, positions, vocab]
# Token classification: per token of the padded input (specials and padding included) ...
TOKEN_LOGITS = "token_logits"  # float32 [batch, seq, num_labels]
TOKEN_PROBABILITIES = "token_probabilities"  # float32 [batch, seq, num_labels] (softmax)
TOKEN_LABELS = "token_labels"  # string [batch, seq]: id2label of the arg-max
# ... and the entities transformers' pipeline("token-classification",
# aggregation_strategy="simple") returns, padded to the most in any text of the batch.
ENTITY_GROUPS = "entity_groups"  # string [batch, entities]; "" pads
ENTITY_SCORES = "entity_scores"  # float32 [batch, entities]: mean token score; 0 pads
ENTITY_STARTS = "entity_starts"  # int32 [batch, entities]: code-point offset; -1 pads
ENTITY_ENDS = "entity_ends"  # int32 [batch, entities]: code-point offset (exclusive); -1 pads
ENTITY_WORDS = "entity_words"  # string [batch, entities]: the tokens decoded; "" pads

# --- Attributes on the SavedModel's root object --------------------------------------------
ATTR_VOCAB_FILE = "vocab_file"  # tf.saved_model.Asset
ATTR_DO_LOWER_CASE = "do_lower_case"  # bool tf.Variable
ATTR_MAX_SEQ_LENGTH = "max_seq_length"  # int32 tf.Variable
ATTR_LENGTH_BUCKETS = "length_buckets"  # int32 tf.Variable [n]
# TF Hub's REUSABLE SavedModel attributes (tensorflow.org/hub/reusable_saved_models).
ATTR_VARIABLES = "variables"  # every weight the callables read
ATTR_TRAINABLE_VARIABLES = "trainable_variables"  # those fine-tuning may change
ATTR_REGULARIZATION_LOSSES = "regularization_losses"  # zero-argument tf.functions (none here)
# Encoder exports: the Hugging Face key of each entry of ``variables`` and whether it is stored
# transposed (a zero-argument function), so fine-tuned weights can be written back as a
# Hugging Face checkpoint.
ATTR_CHECKPOINT_KEYS = "checkpoint_keys"

# --- TF Hub Common SavedModel APIs for text (tensorflow.org/hub/common_saved_model_apis/text) --
EXPORT_END_TO_END = "end-to-end"  # raw text -> task outputs; what TF Serving serves
EXPORT_PREPROCESSING = "preprocessing"  # TF Hub preprocessor: text -> encoder inputs
EXPORT_ENCODER = "encoder"  # TF Hub encoder: encoder inputs -> pooled/sequence outputs
EXPORT_ENCODER_WITH_MLM = "encoder-with-mlm"  # the encoder plus its ``mlm`` subobject
EXPORT_TYPES = (EXPORT_END_TO_END, EXPORT_PREPROCESSING, EXPORT_ENCODER, EXPORT_ENCODER_WITH_MLM)
# Precision of an end-to-end export's transformer layers (outputs are float32 either way).
PRECISION_FLOAT32 = "float32"  # the default: exact to the reference
PRECISION_BFLOAT16 = "bfloat16"  # opt-in: the layers' weights and matmuls in bf16
PRECISIONS = (PRECISION_FLOAT32, PRECISION_BFLOAT16)
TFHUB_TOKENIZE = "tokenize"  # preprocessor.tokenize(text) -> ragged ids
TFHUB_BERT_PACK_INPUTS = "bert_pack_inputs"  # preprocessor.bert_pack_inputs(segments, seq_length)
TFHUB_SPECIAL_TOKENS_DICT = "get_special_tokens_dict"  # preprocessor.tokenize.<this>()
TFHUB_DEFAULT_SEQ_LENGTH = 128  # the Common API's default seq_length
# Keys of get_special_tokens_dict().
VOCAB_SIZE = "vocab_size"
PADDING_ID = "padding_id"
START_OF_SEQUENCE_ID = "start_of_sequence_id"
END_OF_SEGMENT_ID = "end_of_segment_id"
MASK_ID = "mask_id"

# --- Files inside an exported version directory ------------------------------------------
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"  # TF Serving's own name
MODEL_CARD_FILE = "assets.extra/textserve_model.json"  # task, dims, labels, buckets
MAX_WARMUP_RECORDS = 1000  # TF Serving reads at most this many

# --- Serving defaults (tensorflow_model_server's) -----------------------------------------
DEFAULT_GRPC_PORT = 8500
DEFAULT_REST_PORT = 8501
DEFAULT_MODEL_NAME = "default"  # tensorflow_model_server --model_name default
BUNDLED_MODEL_NAME = "minilm"  # the name the README serves the bundled model under
METRICS_PATH = "/monitoring/prometheus/metrics"
OPENAI_EMBEDDINGS_PATH = "/v1/embeddings"
OPENAPI_PATH = "/v1/openapi.json"
DEFAULT_REST_API_TIMEOUT_MS = 30_000  # tensorflow_model_server --rest_api_timeout_in_ms

# --- TF Serving's gRPC API names (what its stubs and clients name on the wire) ---------------
PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
SIGNATURE_DEF_FIELD = "signature_def"  # the one GetModelMetadata metadata_field TF Serving knows
# The Any's type URL names TF Serving's message: its clients' Unpack() checks the name.
SIGNATURE_DEF_MAP_TYPE_URL = "type.googleapis.com/tensorflow.serving.SignatureDefMap"
CLASSIFY_METHOD_NAME = "tensorflow/serving/classify"  # SignatureDef.method_name values
REGRESS_METHOD_NAME = "tensorflow/serving/regress"
# Status codes that mean "overloaded, back off": TF Serving answers a full batch queue with
# UNAVAILABLE, this server (like gRPC's own concurrency limit) with RESOURCE_EXHAUSTED.
OVERLOAD_CODES = frozenset({"RESOURCE_EXHAUSTED", "UNAVAILABLE"})

# --- Metric names (Prometheus) ----------------------------------------------------------------
METRIC_REQUESTS = "textserve_requests_total"  # labels: model, api, code
METRIC_REQUEST_LATENCY = "textserve_request_latency_seconds"  # labels: model, api
METRIC_QUEUE_WAIT = "textserve_batch_queue_wait_seconds"  # labels: model
METRIC_BATCH_SIZE = "textserve_batch_size"  # labels: model (rows per executed batch)
METRIC_BATCH_TOKENS = "textserve_batch_padded_tokens"  # labels: model
METRIC_INFERENCE_LATENCY = "textserve_inference_latency_seconds"  # labels: model, version
METRIC_QUEUE_DEPTH = "textserve_batch_queue_depth"  # labels: model
METRIC_MODEL_VERSIONS = "textserve_model_version_available"  # labels: model, version
METRIC_WORKER_RESTARTS = "textserve_worker_restarts_total"
