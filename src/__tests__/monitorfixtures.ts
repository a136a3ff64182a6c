/** Answers shaped like the REST contract's monitor routes, for the Monitor panel's unit tests. */

import { Deployment, Job, MonitorSeries, MonitorSummary } from '../common/api';
import { deploymentAnswer, jobAnswer } from './apifixtures';

export function deployment(name: string, state = 'running'): Deployment {
  return deploymentAnswer({
    name,
    state,
    health: state === 'running' ? 'healthy' : 'stopped',
    url: 'http://127.0.0.1:9999',
    endpoints: {}
  });
}

/** A retraining of the deployment `mon`, started from the panel: still running. */
export function retrainJob(extra: Partial<Job> = {}): Job {
  return jobAnswer({ kind: 'retrain', argv: ['retrain', 'mon'], deployment: 'mon', ...extra });
}

export function summary(at = 1000, drifted = ['pixel_3', 'pixel_5']): MonitorSummary {
  const names = ['pixel_1', 'pixel_3', 'pixel_5', 'pixel_7'];
  return {
    status: 'ok',
    deployment: 'mon',
    model: 'ci-digits',
    version: '1',
    at,
    window: '1:4',
    window_rows: 300,
    logged_rows: 1234,
    completed_windows: 4,
    settings: {
      window: 300,
      min_rows: 200,
      min_labels: 50,
      psi_bands: [0.1, 0.25],
      rules: [
        {
          name: 'feature-drift',
          metric: 'psi',
          op: '>',
          threshold: 0.25,
          any_feature: true,
          for_windows: 2,
          action: 'retrain'
        },
        { name: 'errors', metric: 'error_rate', op: '>', threshold: 0.01 }
      ]
    },
    drift: {
      n_rows: 300,
      min_rows: 200,
      status: 'ok',
      drifted,
      features: names.map((name, i) => ({
        name,
        status: 'ok',
        n: 300,
        psi: drifted.includes(name) ? 0.6 + i / 10 : 0.02 * i,
        psi_band: drifted.includes(name) ? 'major' : 'none',
        drifted: drifted.includes(name)
      }))
    },
    prediction_drift: null,
    quality: {
      metric: 'accuracy',
      status: 'ok',
      n: 150,
      requests: 300,
      label_rate: 0.5,
      accuracy: 0.9133,
      accuracy_lower: 0.86,
      accuracy_upper: 0.95
    },
    requests: {
      requests: 300,
      errors: 3,
      error_rate: 0.01,
      latency_p50_ms: 1.25,
      latency_p90_ms: 2.5,
      latency_p95_ms: 3.5,
      latency_p99_ms: 7.75
    },
    alerts: [
      {
        rule: 'errors',
        state: 'ok',
        since: null,
        value: 0.01,
        features: [],
        metric: 'error_rate',
        op: '>',
        threshold: 0.01,
        action: null
      },
      {
        rule: 'feature-drift',
        state: 'firing',
        since: at - 125,
        value: 0.9,
        features: drifted,
        metric: 'psi',
        op: '>',
        threshold: 0.25,
        action: 'retrain'
      }
    ],
    events: [
      {
        id: 1,
        deployment: 'mon',
        rule: 'feature-drift',
        event: 'resolved',
        at: at - 600,
        metric: 'psi',
        value: 0.1,
        threshold: 0.25,
        features: []
      },
      {
        id: 2,
        deployment: 'mon',
        rule: 'feature-drift',
        event: 'fired',
        at: at - 125,
        metric: 'psi',
        value: 0.9,
        threshold: 0.25,
        features: drifted,
        handled_by: 'retraining #1'
      }
    ],
    notes: []
  };
}

export function series(): MonitorSeries {
  return {
    deployment: 'mon',
    model: 'ci-digits',
    version: '1',
    start: 0,
    end: 30,
    task: 'classification',
    requests: {
      t: [0, 10, 20],
      rate: [50, 0, 61.5],
      error_rate: [0, null, 0.05],
      errors_per_s: [0, 0, 3],
      p50_ms: [1, null, 2],
      p95_ms: [2, null, 3],
      p99_ms: [4, null, 9],
      requests: [500, 0, 615],
      bucket_s: 10
    },
    quality: [
      { at: 20, status: 'ok', accuracy: 0.9, accuracy_lower: 0.85, accuracy_upper: 0.94, n: 100 },
      { at: 10, status: 'insufficient labels', accuracy: null, n: 3 },
      { at: 5, status: 'ok', accuracy: 0.95, accuracy_lower: 0.9, accuracy_upper: 0.98, n: 80 }
    ],
    predictions: {
      task: 'classification',
      classes: ['0', '1', '2'],
      reference: [0.3, 0.3, 0.4],
      live: [0.1, 0.2, 0.7],
      unseen: 0,
      n: 615
    }
  };
}
