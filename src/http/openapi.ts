import { readFileSync } from 'node:fs';
import { MAX_PREDICTIONS_PER_REQUEST } from './predict-request.js';
import { DEFAULT_LAST_ROWS, MAX_LAST_ROWS } from './routes/dataset-rows.js';

/**
 * GET /openapi.json: the OpenAPI 3.1 description of every route, its error bodies and statuses. Schemas are
 * JSON Schema 2020-12, and the test suite validates the running server's real responses against them, so a
 * change to a response that is not made here too fails a test.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Json): Json => ({ 'application/json': { schema } });
const text = (schema: Json = { type: 'string' }): Json => ({ 'text/plain': { schema } });

const errorResponse = (description: string): Json => ({ description, content: json(ref('Error')) });

const kserveError = (description: string): { description: string; content: Json } => ({ description, content: json(ref('KserveError')) });

const KEYED: Json = [{ apiKey: [] }, { bearer: [] }];
const OPEN: Json = [];

/** Responses every route with auth can give besides its own. */
const AUTH_ERRORS: Record<string, Json> = {
  '400': errorResponse('Malformed request: an over-long URL, two Content-Length headers, two credentials, or a bad parameter'),
  '401': {
    description: 'Auth is on and the request has no valid API key',
    headers: { 'WWW-Authenticate': { schema: { type: 'string', const: 'Bearer' } } },
    content: json(ref('Error')),
  },
};

const RETRY_AFTER: Json = { 'Retry-After': { description: 'Seconds to wait before retrying', schema: { type: 'string' } } };

const entryStatus: Json = { type: 'string', enum: ['Initializing', 'Ready', 'Refreshing', 'Error'] };
const isoTime: Json = { type: 'string', format: 'date-time' };
const nullableNumber: Json = { type: ['number', 'null'] };
const nullableIsoTime: Json = { type: ['string', 'null'], format: 'date-time' };

const schemas: Record<string, Json> = {
  Error: {
    type: 'object',
    description: 'The body every error outside the prediction routes shares.',
    required: ['status', 'error_message'],
    additionalProperties: false,
    properties: {
      status: { type: 'string', enum: ['NotFound', 'MethodNotAllowed', 'Unauthorized', 'PayloadTooLarge', 'BadRequest', 'InternalError'] },
      error_message: { type: 'string' },
    },
  },
  Prediction: {
    type: 'object',
    description:
      'One model\'s answer; fields in this order, absent ones omitted. An error for a known model still carries model_name, model_version and lookback where known.',
    required: ['status', 'model_name', 'duration_ms'],
    additionalProperties: false,
    properties: {
      status: { type: 'string', enum: ['Success', 'BadRequest', 'InternalError'] },
      error_message: { type: 'string' },
      model_name: { type: 'string' },
      variant: { type: 'string', description: 'A variants entry\'s answer: the member drawn to give it (model_name stays as requested).' },
      model_version: { type: 'string' },
      lookback: { type: 'integer', minimum: 1 },
      prediction: { type: 'array', items: { type: 'number' }, description: 'Output 0 of the model for the latest window, flattened row-major.' },
      timestamps: { type: 'array', items: isoTime, description: 'With include=timestamps: one per forecast step.' },
      quantiles: {
        type: 'object',
        description: 'With include=quantiles, for a quantile model: the values of each level, keyed by the level as written.',
        additionalProperties: { type: 'array', items: { type: 'number' } },
      },
      duration_ms: { type: 'integer', minimum: 0 },
    },
    if: { properties: { status: { const: 'Success' } } },
    then: { required: ['prediction'], not: { required: ['error_message'] } },
    else: { required: ['error_message'], not: { required: ['prediction'] } },
  },
  PredictRequest: {
    type: 'object',
    description: `Parsed as JSON whatever the Content-Type. Without "predictions", every Ready model; [] means none. At most ${MAX_PREDICTIONS_PER_REQUEST} items.`,
    properties: {
      predictions: {
        type: 'array',
        maxItems: MAX_PREDICTIONS_PER_REQUEST,
        items: { type: 'object', required: ['model_name'], properties: { model_name: { type: 'string', minLength: 1 } } },
      },
    },
  },
  PredictMany: {
    type: 'object',
    required: ['duration_ms', 'predictions'],
    additionalProperties: false,
    properties: {
      duration_ms: { type: 'integer', minimum: 0 },
      predictions: { type: 'array', items: ref('Prediction') },
    },
  },
  Model: {
    type: 'object',
    required: ['name', 'from', 'datasets'],
    additionalProperties: false,
    properties: {
      name: { type: 'string' },
      from: { type: 'string', description: 'As written in spicepod.yaml.' },
      datasets: { type: 'array', items: { type: 'string' } },
      status: { ...(entryStatus as object), description: 'With ?status=true.' },
      error: { type: ['string', 'null'], description: 'With ?status=true: the last load or reload failure.' },
      mae: { type: ['number', 'null'], description: "With ?status=true: the latest evaluation's mean absolute error; null before one finished." },
      skill: { type: ['number', 'null'], description: "With ?status=true: the latest evaluation's skill against the seasonal-naive baseline." },
    },
  },
  Dataset: {
    type: 'object',
    required: ['name', 'from', 'rows', 'first_ts', 'last_ts', 'status', 'error', 'refreshed_at', 'frequency', 'off_grid_rows'],
    additionalProperties: false,
    properties: {
      name: { type: 'string' },
      from: { type: 'string', description: 'As written in spicepod.yaml.' },
      rows: { type: 'integer', minimum: 0 },
      first_ts: nullableIsoTime,
      last_ts: nullableIsoTime,
      status: entryStatus,
      error: { type: ['string', 'null'] },
      refreshed_at: { ...(nullableIsoTime as object), description: 'The last successful check of the source, even one that found nothing new.' },
      frequency: { type: ['string', 'null'], description: 'The step inferred from the time column, an ISO 8601 duration (PT1H, P7D, P1M); null when none covers most rows.' },
      off_grid_rows: {
        type: 'integer',
        minimum: 0,
        description:
          'Rows that fill no step of the grid anchored at the newest row that continues it (a 10:30 row among hourly rows, a stray newest row); windows ignore them. 0 without a frequency.',
      },
    },
  },
  DatasetRows: {
    type: 'object',
    required: ['name', 'columns', 'timestamps', 'values'],
    additionalProperties: false,
    properties: {
      name: { type: 'string' },
      columns: { type: 'array', items: { type: 'string' }, description: 'Value columns in tensor order.' },
      timestamps: { type: 'array', items: isoTime },
      values: {
        type: 'array',
        description: 'One row per timestamp, its values in column order; a missing value is null.',
        items: { type: 'array', items: { type: ['number', 'null'] } },
      },
    },
  },
  ModelDetails: {
    type: 'object',
    description: 'One model, for per-model readiness as KServe and Triton users expect.',
    required: ['name', 'from', 'datasets', 'status', 'error', 'version', 'lookback', 'horizon', 'variables', 'quantiles', 'frequency', 'mae', 'skill'],
    additionalProperties: false,
    properties: {
      name: { type: 'string' },
      from: { type: 'string' },
      datasets: { type: 'array', items: { type: 'string' } },
      status: entryStatus,
      error: { type: ['string', 'null'] },
      version: { type: ['string', 'null'] },
      lookback: { type: ['integer', 'null'], minimum: 1 },
      horizon: { type: ['integer', 'null'], minimum: 1, description: 'Steps forecast; null until loaded, or when output 0 has no horizon.' },
      variables: { type: ['integer', 'null'], minimum: 1 },
      quantiles: { type: ['array', 'null'], items: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 } },
      frequency: { type: ['string', 'null'], description: "The frequency of the model's dataset (ISO 8601 duration)." },
      combine: { type: 'string', enum: ['mean', 'median', 'weighted'], description: 'An ensemble: how its members\' forecasts are combined.' },
      sticky: { type: 'string', description: 'A variants entry: what keeps a caller on one member (none, api_key or header:NAME).' },
      weights_from: {
        type: 'string',
        enum: ['inverse_mae', 'equal'],
        description: "An ensemble with weights: inverse_mae: whether the weights in use are 1/MAE of each member on the origins common to all (normalised), or still equal (until every member's evaluation is Ready).",
      },
      members: {
        type: 'array',
        description: 'An ensemble or variants entry: its members in pod order, with their weights (ensemble: shares summing to 1; variants: integer draw weights) and status.',
        items: {
          type: 'object',
          required: ['name', 'weight', 'status'],
          additionalProperties: false,
          properties: { name: { type: 'string' }, weight: { type: 'number', minimum: 0 }, status: entryStatus },
        },
      },
      mae: { type: ['number', 'null'], description: "The latest evaluation's mean absolute error; null before one finished." },
      skill: { type: ['number', 'null'], description: "The latest evaluation's skill: 1 - MAE / MAE of the seasonal-naive baseline (naive when the season length is 1)." },
    },
  },
  Evaluation: {
    type: 'object',
    description:
      "A rolling-origin backtest of the model on its own dataset. Results (from `origins` on) are present once one evaluation finished; while the next one computes they stay, with status Computing and their own computed_at. Errors are forecast - actual.",
    required: ['model', 'dataset', 'status'],
    additionalProperties: false,
    properties: {
      model: { type: 'string' },
      dataset: { type: ['string', 'null'] },
      status: { type: 'string', enum: ['Computing', 'Ready', 'Off', 'Error'] },
      error: { type: 'string', description: 'Why the evaluation is Off or failed.' },
      origins: { type: 'integer', minimum: 1, description: 'Scored origins, newest first, at or after params.evaluation.since.' },
      skipped: { type: 'integer', minimum: 0, description: 'Origins whose window could not be built (a gap it may not fill, too little history).' },
      first_origin: isoTime,
      last_origin: isoTime,
      horizon: { type: 'integer', minimum: 1 },
      season_length: { type: 'integer', minimum: 1 },
      mae: nullableNumber,
      rmse: nullableNumber,
      bias: { ...(nullableNumber as object), description: 'Mean of forecast - actual.' },
      mase: { ...(nullableNumber as object), description: 'MAE over the in-sample seasonal difference scale; null with fewer than season_length pairs or a zero scale.' },
      skill: { ...(nullableNumber as object), description: '1 - MAE / MAE of the seasonal-naive baseline (naive when season_length is 1).' },
      by_step: ref('ErrorsByStep'),
      by_variable: {
        type: 'array',
        description: 'Only for a model that forecasts several columns: each column on its own.',
        items: {
          type: 'object',
          required: ['variable', 'mae', 'rmse', 'bias', 'mase', 'skill'],
          additionalProperties: false,
          properties: { variable: { type: 'string' }, mae: nullableNumber, rmse: nullableNumber, bias: nullableNumber, mase: nullableNumber, skill: nullableNumber },
        },
      },
      skipped_pairs: { type: 'integer', minimum: 0, description: '(origin, step) pairs with no stored actual, left out of the model and the baselines alike.' },
      baselines: {
        type: 'object',
        required: ['naive', 'seasonal_naive'],
        additionalProperties: false,
        properties: { naive: ref('BaselineErrors'), seasonal_naive: ref('BaselineErrors') },
      },
      quantiles: {
        type: 'object',
        description: 'Quantile models: per level (as written, "0.1").',
        additionalProperties: {
          type: 'object',
          required: ['calibration', 'pinball'],
          additionalProperties: false,
          properties: {
            calibration: { ...(nullableNumber as object), description: "Share of actuals at or below the level's forecast." },
            pinball: { ...(nullableNumber as object), description: 'Mean pinball loss.' },
          },
        },
      },
      intervals: {
        type: 'array',
        description: 'Quantile models: per symmetric pair of levels (q, 1 - q).',
        items: {
          type: 'object',
          required: ['lower', 'upper', 'nominal', 'coverage'],
          additionalProperties: false,
          properties: { lower: { type: 'number' }, upper: { type: 'number' }, nominal: { type: 'number' }, coverage: nullableNumber },
        },
      },
      past_forecasts: {
        type: 'array',
        description:
          'The forecasts of a few recent origins beside what happened, for drawing over the history: at most 5 origins, each at least a horizon older than the next one kept (so their forecasts lie side by side), oldest first; one entry per origin and scored variable. Kept with the results, not recomputed per request.',
        items: {
          type: 'object',
          required: ['origin', 'variable', 'timestamps', 'forecast', 'actual'],
          additionalProperties: false,
          properties: {
            origin: { ...isoTime, description: 'The forecast was made from the rows up to this time.' },
            variable: { type: 'string', description: 'The dataset column forecast.' },
            timestamps: { type: 'array', items: isoTime, description: 'The horizon steps after the origin.' },
            forecast: { type: 'array', items: { type: 'number' }, description: "The model's forecast at each step." },
            actual: { type: 'array', items: nullableNumber, description: 'The stored value at each step; null where the dataset holds none.' },
          },
        },
      },
      computed_at: isoTime,
      duration_ms: { type: 'integer', minimum: 0 },
    },
  },
  VariantsEvaluation: {
    type: 'object',
    description: "A variants entry's evaluation: each member's own evaluation with its draw weight, side by side; the entry has no metrics of its own.",
    required: ['model', 'status', 'variants'],
    additionalProperties: false,
    properties: {
      model: { type: 'string' },
      status: { type: 'string', enum: ['Computing', 'Ready', 'Off', 'Error'] },
      variants: {
        type: 'object',
        additionalProperties: {
          type: 'object',
          description: "The member's evaluation, every field of GET /v1/models/MEMBER/evaluation (see Evaluation), and its weight.",
          required: ['model', 'status', 'weight'],
          properties: {
            model: { type: 'string' },
            status: { type: 'string', enum: ['Computing', 'Ready', 'Off', 'Error'] },
            weight: { type: 'integer', minimum: 0 },
          },
        },
      },
    },
  },
  ErrorsByStep: {
    type: 'object',
    description: 'One entry per forecast step (horizon); null for a step with no scored pair.',
    required: ['mae', 'rmse', 'bias'],
    additionalProperties: false,
    properties: {
      mae: { type: 'array', items: nullableNumber },
      rmse: { type: 'array', items: nullableNumber },
      bias: { type: 'array', items: nullableNumber },
    },
  },
  BaselineErrors: {
    type: 'object',
    required: ['mae', 'rmse', 'by_step'],
    additionalProperties: false,
    properties: {
      mae: nullableNumber,
      rmse: nullableNumber,
      by_step: { type: 'object', required: ['mae'], additionalProperties: false, properties: { mae: { type: 'array', items: nullableNumber } } },
    },
  },
  KserveErrorObject: {
    type: 'object',
    required: ['code', 'message', 'param', 'type'],
    additionalProperties: false,
    properties: {
      code: { type: 'string', pattern: '^[1-5][0-9][0-9]$', description: 'The HTTP status, as a string.' },
      message: { type: 'string' },
      param: { type: ['string', 'null'], description: 'Where in the request, like inputs[1].series.' },
      type: {
        type: 'string',
        enum: [
          'invalid_request', 'invalid_series', 'invalid_horizon', 'invalid_quantile', 'invalid_frequency', 'model_not_found',
          'model_not_ready', 'queue_full', 'timeout', 'inference_error', 'unauthorized', 'method_not_allowed', 'payload_too_large',
          'not_found', 'internal_error',
        ],
      },
    },
  },
  KserveError: {
    type: 'object',
    description: 'The error body of the /v1/timeseries routes.',
    required: ['error'],
    additionalProperties: false,
    properties: { error: ref('KserveErrorObject') },
  },
  ForecastRequest: {
    type: 'object',
    required: ['model', 'inputs', 'options'],
    properties: {
      model: { type: 'string' },
      inputs: {
        type: 'array',
        minItems: 1,
        maxItems: 1000,
        items: {
          type: 'object',
          required: ['type', 'name', 'series', 'frequency'],
          properties: {
            type: { type: 'string', enum: ['univariate_time_series', 'multivariate_time_series'] },
            name: { type: 'string' },
            series: {
              type: 'array',
              description: 'Univariate: [t0, t1, ...]; multivariate: one array of values per time step (outer = time).',
              items: { oneOf: [{ type: 'number' }, { type: 'array', items: { type: 'number' } }] },
            },
            frequency: { type: 'string', enum: ['second', 'minute', 'hour', 'day', 'week', 'month', 'quarter', 'year', 'S', 'T', 'H', 'D', 'W', 'M', 'Q', 'Y'] },
            start_timestamp: { type: 'string', description: 'ISO 8601; without a zone, UTC.' },
          },
        },
      },
      options: {
        type: 'object',
        required: ['horizon'],
        properties: { horizon: { type: 'integer', minimum: 1 }, quantiles: { type: 'array', items: { type: 'number' } } },
      },
      metadata: { type: 'object' },
    },
  },
  ForecastResponse: {
    type: 'object',
    required: ['id', 'created_at', 'status', 'model', 'outputs', 'usage'],
    additionalProperties: false,
    properties: {
      id: { type: 'string' },
      created_at: { type: 'integer', description: 'Unix seconds.' },
      status: { type: 'string', enum: ['completed', 'partial', 'error'] },
      model: { type: 'string' },
      outputs: {
        type: 'array',
        items: {
          type: 'object',
          required: ['type', 'id', 'status', 'content'],
          additionalProperties: false,
          properties: {
            type: { const: 'time_series_forecast' },
            id: { type: 'string' },
            variant: { type: 'string', description: 'A variants entry: the member drawn for this request.' },
            status: { type: 'string', enum: ['completed', 'error'] },
            content: {
              type: 'array',
              items: {
                type: 'object',
                required: ['type', 'name', 'mean_forecast', 'frequency'],
                additionalProperties: false,
                properties: {
                  type: { type: 'string', enum: ['univariate_time_series', 'multivariate_time_series'] },
                  name: { type: 'string' },
                  mean_forecast: { type: 'array', items: { oneOf: [{ type: 'number' }, { type: 'array', items: { type: 'number' } }] } },
                  frequency: { type: 'string' },
                  start_timestamp: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}Z$' },
                  quantiles: {
                    type: 'object',
                    additionalProperties: { type: 'array', items: { oneOf: [{ type: 'number' }, { type: 'array', items: { type: 'number' } }] } },
                  },
                },
              },
            },
            error: ref('KserveErrorObject'),
          },
        },
      },
      usage: {
        type: 'object',
        required: ['prompt_tokens', 'completion_tokens', 'total_tokens'],
        additionalProperties: false,
        properties: {
          prompt_tokens: { type: 'integer', minimum: 0 },
          completion_tokens: { type: 'integer', minimum: 0 },
          total_tokens: { type: 'integer', minimum: 0 },
        },
      },
    },
  },
  TimeseriesModels: {
    type: 'object',
    required: ['models'],
    additionalProperties: false,
    properties: {
      models: {
        type: 'array',
        items: {
          type: 'object',
          required: ['name', 'status', 'ready', 'lookback', 'horizon', 'variables', 'quantiles'],
          additionalProperties: false,
          properties: {
            name: { type: 'string' },
            status: entryStatus,
            ready: { type: 'boolean' },
            lookback: { type: ['integer', 'null'] },
            horizon: { type: ['integer', 'null'] },
            variables: { type: ['integer', 'null'] },
            quantiles: { type: ['array', 'null'], items: { type: 'number' } },
          },
        },
      },
    },
  },
};

const nameParameter = (what: string): Json => ({
  name: 'name',
  in: 'path',
  required: true,
  description: `The ${what}'s name (percent-encoded).`,
  schema: { type: 'string' },
});

const includeParameter: Json = {
  name: 'include',
  in: 'query',
  required: false,
  description: 'Comma-separated: timestamps, quantiles. A field that cannot be given is omitted; an unknown value is 400.',
  schema: { type: 'string' },
};

const predictionResponses: Record<string, Json> = {
  '200': { description: 'Success', content: json(ref('Prediction')) },
  '400': { description: 'No such model (Model NAME not found), a malformed name, or a bad include', content: json({ oneOf: [ref('Prediction'), ref('Error')] }) },
  '401': AUTH_ERRORS['401']!,
  '500': { description: 'Model in Error, dataset not ready, too few rows, a gap in the window, non-finite output, inference failed', content: json(ref('Prediction')) },
  '503': { description: 'Model still loading, or its queue is full', headers: RETRY_AFTER, content: json(ref('Prediction')) },
  '504': { description: 'Waited past the model\'s timeout_ms', content: json(ref('Prediction')) },
};

const paths: Record<string, Json> = {
  '/v1/models/{name}/predict': {
    get: {
      operationId: 'predict',
      summary: 'Forecast of one model from the latest window of its dataset (Spice.ai\'s ML predictions API)',
      security: KEYED,
      parameters: [nameParameter('model'), includeParameter],
      responses: predictionResponses,
    },
  },
  '/v1/predict': {
    post: {
      operationId: 'predictMany',
      summary: 'Forecasts of several models at once, run concurrently; errors stay inside their item',
      security: KEYED,
      parameters: [includeParameter],
      requestBody: { required: false, content: json(ref('PredictRequest')) },
      responses: {
        '200': { description: 'One item per requested model, in request order', content: json(ref('PredictMany')) },
        ...AUTH_ERRORS,
        '400': errorResponse('Malformed JSON, a wrong shape, invalid UTF-8, or too many items'),
        '413': errorResponse('The body is over 1 MiB'),
      },
    },
  },
  '/v1/models': {
    get: {
      operationId: 'listModels',
      summary: 'Every model of the pod',
      security: KEYED,
      parameters: [
        { name: 'status', in: 'query', required: false, description: 'true adds status and error', schema: { type: 'string', enum: ['true', 'false'] } },
        { name: 'format', in: 'query', required: false, schema: { type: 'string', enum: ['json', 'csv'] } },
      ],
      responses: {
        '200': {
          description: 'The models, in pod order',
          content: {
            'application/json': { schema: { type: 'array', items: ref('Model') } },
            'text/csv': { schema: { type: 'string' } },
          },
        },
        ...AUTH_ERRORS,
      },
    },
  },
  '/v1/datasets': {
    get: {
      operationId: 'listDatasets',
      summary: 'Every dataset of the pod',
      security: KEYED,
      responses: { '200': { description: 'The datasets, in pod order', content: json({ type: 'array', items: ref('Dataset') }) }, ...AUTH_ERRORS },
    },
  },
  '/v1/datasets/{name}/rows': {
    get: {
      operationId: 'datasetRows',
      summary: 'The newest rows a dataset holds, oldest first',
      security: KEYED,
      parameters: [
        nameParameter('dataset'),
        {
          name: 'last',
          in: 'query',
          required: false,
          description: `How many of the newest rows (default ${DEFAULT_LAST_ROWS}, at most ${MAX_LAST_ROWS}; beyond is 400).`,
          schema: { type: 'integer', minimum: 1, maximum: MAX_LAST_ROWS, default: DEFAULT_LAST_ROWS },
        },
      ],
      responses: {
        '200': { description: 'The rows', content: json(ref('DatasetRows')) },
        ...AUTH_ERRORS,
        '404': errorResponse('No dataset of that name'),
      },
    },
  },
  '/v1/models/{name}': {
    get: {
      operationId: 'model',
      summary: "One model: status, error, version, lookback, horizon, variables, quantile levels, its dataset's frequency",
      security: KEYED,
      parameters: [nameParameter('model')],
      responses: { '200': { description: 'The model', content: json(ref('ModelDetails')) }, ...AUTH_ERRORS, '404': errorResponse('No model of that name') },
    },
  },
  '/v1/models/{name}/evaluation': {
    get: {
      operationId: 'modelEvaluation',
      summary: 'How good the model is: a rolling-origin backtest on its own dataset, against naive and seasonal-naive baselines',
      security: KEYED,
      parameters: [nameParameter('model')],
      responses: {
        '200': { description: "The evaluation (a variants entry: its members' side by side)", content: json({ oneOf: [ref('Evaluation'), ref('VariantsEvaluation')] }) },
        ...AUTH_ERRORS,
        '404': errorResponse('No model of that name'),
      },
    },
  },
  '/v1/timeseries/forecast': {
    post: {
      operationId: 'timeseriesForecast',
      summary: "KServe's TimeSeries forecast API: forecasts of series sent by the client",
      security: KEYED,
      requestBody: { required: true, content: json(ref('ForecastRequest')) },
      responses: {
        '200': { description: 'One output per input, in order; a failed input has status error (the response is then partial, or error)', content: json(ref('ForecastResponse')) },
        '400': kserveError('Malformed JSON, missing fields, wrong types, bad enum values, no inputs, a bad horizon or quantile'),
        '401': { ...kserveError('Auth is on and the request has no valid API key'), headers: { 'WWW-Authenticate': { schema: { type: 'string', const: 'Bearer' } } } },
        '404': kserveError('No model of that name'),
        '405': { ...kserveError('Wrong method for this route'), headers: { Allow: { schema: { type: 'string' } } } },
        '413': kserveError('The body is over 4 MiB'),
        '500': kserveError('The model is in Error, or an unexpected failure'),
        '503': { ...kserveError('The model is still loading, or its queue is full'), headers: RETRY_AFTER },
        '504': kserveError("Every input waited past the model's timeout_ms"),
      },
    },
  },
  '/v1/timeseries/models': {
    get: {
      operationId: 'timeseriesModels',
      summary: 'Every model with what a client needs to send it series',
      security: KEYED,
      responses: {
        '200': { description: 'The models', content: json(ref('TimeseriesModels')) },
        '401': { ...kserveError('Auth is on and the request has no valid API key'), headers: { 'WWW-Authenticate': { schema: { type: 'string', const: 'Bearer' } } } },
        '405': { ...kserveError('Wrong method for this route'), headers: { Allow: { schema: { type: 'string' } } } },
        '500': kserveError('An unexpected failure while answering'),
      },
    },
  },
  '/health': {
    get: { operationId: 'health', summary: 'Liveness', security: OPEN, responses: { '200': { description: 'The process serves', content: text({ const: 'ok' }) } } },
  },
  '/v1/ready': {
    get: {
      operationId: 'ready',
      summary: 'Readiness: 200 once startup brought every model and dataset out of Initializing; it then stays 200 until shutdown',
      security: OPEN,
      responses: {
        '200': { description: 'Ready', content: text({ const: 'ready' }) },
        '503': { description: 'Still starting, or shutting down', content: text({ const: 'not ready' }) },
      },
    },
  },
  '/metrics': {
    get: {
      operationId: 'metrics',
      summary: 'Prometheus metrics',
      security: KEYED,
      responses: {
        '200': { description: 'Prometheus text exposition format 0.0.4', content: { 'text/plain; version=0.0.4; charset=utf-8': { schema: { type: 'string' } } } },
        ...AUTH_ERRORS,
      },
    },
  },
  '/openapi.json': {
    get: {
      operationId: 'openapi',
      summary: 'This document',
      security: OPEN,
      responses: { '200': { description: 'OpenAPI 3.1', content: json({ type: 'object', required: ['openapi', 'info', 'paths'] }) } },
    },
  },
  '/': {
    get: {
      operationId: 'dashboard',
      summary: 'The dashboard page (it carries no data; with auth on it asks for the API key)',
      security: OPEN,
      responses: {
        '200': { description: 'The page', headers: { ETag: { schema: { type: 'string' } } }, content: { 'text/html': { schema: { type: 'string' } } } },
        '304': { description: 'Not modified (If-None-Match)' },
      },
    },
  },
  '/assets/{build}/{file}': {
    get: {
      operationId: 'dashboardAsset',
      summary: 'A file of the dashboard; the page names the current build, whose files are immutable',
      security: OPEN,
      parameters: [
        { name: 'build', in: 'path', required: true, schema: { type: 'string' } },
        { name: 'file', in: 'path', required: true, schema: { type: 'string' } },
      ],
      responses: {
        '200': {
          description: 'The file, compressed when the client accepts br or gzip',
          content: { 'text/javascript': { schema: { type: 'string' } }, 'text/css': { schema: { type: 'string' } } },
        },
        '304': { description: 'Not modified (If-None-Match)' },
        '404': errorResponse('No such file in this build'),
      },
    },
  },
};

/** Statuses any route can answer with, whatever its own. */
const COMMON_RESPONSES: Record<string, Json> = {
  '405': {
    description: 'Wrong method for this route',
    headers: { Allow: { schema: { type: 'string' } } },
    content: json(ref('Error')),
  },
  '500': errorResponse('An unexpected failure while answering'),
};

for (const item of Object.values(paths)) {
  for (const operation of Object.values(item as Record<string, { responses: Record<string, Json> }>)) {
    for (const [code, response] of Object.entries(COMMON_RESPONSES)) operation.responses[code] ??= response;
  }
}

const document: Json = {
  openapi: '3.1.0',
  info: {
    title: 'forecastd',
    version: packageVersion(),
    description:
      'Forecasting inference server: ONNX time-series models served with Spice.ai\'s ML predictions API. Any path not listed answers 404 with the shared Error body.',
    license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
  },
  jsonSchemaDialect: 'https://spec.openapis.org/oas/3.1/dialect/base',
  servers: [{ url: '/' }],
  security: KEYED,
  paths,
  components: {
    schemas,
    securitySchemes: {
      apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'When runtime.auth.api-key is enabled' },
      bearer: { type: 'http', scheme: 'bearer', description: 'The same key as Authorization: Bearer KEY' },
    },
  },
};

/** This file is src/http/openapi.ts, or dist/http/openapi.js once built: package.json is two folders up. */
function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return typeof manifest.version === 'string' ? manifest.version : '0.0.0';
}

let serialized: string | null = null;

/** The document, serialized once. */
export function openApiJson(): string {
  serialized ??= JSON.stringify(document);
  return serialized;
}
