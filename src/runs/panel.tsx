/**
 * The Runs panel widget: its React view (./view) of the model, and the dialogs (start a pipeline, re-run a
 * failed run) that keep asking until the params are a JSON object the server accepts or the user cancels;
 * the server's sentence for a refused request is shown inside the dialog. "Run from here" is confirmed
 * inline, in the step's details (see RunsModel.askRunFrom).
 */

import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';
import * as React from 'react';

import { RunDiff, RunSummary } from '../common/api';
import { h } from '../common/dom';
import { ReactPanel } from '../common/panel';
import { errorMessage } from '../common/polledmodel';
import { formatValue } from './format';
import { failedStep, knownPipelines, parseParams, RunsModel } from './model';
import { IRunsActions, RunsView } from './view';

export interface IParamsFormValue {
  pipeline: string;
  text: string;
}

export interface IParamsFormOptions {
  intro: string;
  text: string;
  error?: string | null;
  /** Offered pipelines; when given the form has a pipeline field. */
  pipelines?: string[];
  pipeline?: string;
  /** Resolved params of the latest run of a pipeline, shown as a reference. */
  reference?: (pipeline: string) => Record<string, unknown> | null;
}

/** The dialog body: pipeline (optional), a JSON params box, what is wrong so far, and the params to start from. */
export class ParamsForm extends Widget implements Dialog.IBodyWidget<IParamsFormValue> {
  constructor(private readonly options: IParamsFormOptions) {
    super();
    this.addClass('jp-aidevops-runs-form');
    this.textarea = h('textarea', {
      class: 'jp-aidevops-runs-params-input',
      rows: '6',
      spellcheck: 'false',
      'aria-label': 'params (JSON object)'
    });
    this.textarea.value = options.text;
    this.node.append(h('p', { class: 'jp-aidevops-runs-form-intro' }, options.intro));
    if (options.pipelines) {
      this.pipelineInput = h('input', {
        class: 'jp-aidevops-runs-pipeline-input',
        list: 'jp-aidevops-runs-pipelines',
        'aria-label': 'pipeline'
      });
      this.pipelineInput.value = options.pipeline ?? options.pipelines[0] ?? '';
      this.pipelineInput.addEventListener('input', () => this.renderReference());
      this.node.append(
        h('label', { class: 'jp-aidevops-runs-form-field' }, 'Pipeline ', this.pipelineInput),
        h('datalist', { id: 'jp-aidevops-runs-pipelines' }, ...options.pipelines.map(p => h('option', { value: p })))
      );
    }
    this.node.append(
      h(
        'label',
        { class: 'jp-aidevops-runs-form-field' },
        'Params (JSON object; ',
        h('code', {}, 'step.key'),
        " sets one step's param)"
      ),
      this.textarea
    );
    if (options.error) {
      this.node.append(
        h('div', { class: 'jp-aidevops-error jp-aidevops-runs-form-error', role: 'alert' }, options.error)
      );
    }
    this.node.append(this.referenceBox);
    this.renderReference();
  }

  readonly textarea: HTMLTextAreaElement;
  readonly pipelineInput: HTMLInputElement | null = null;

  getValue(): IParamsFormValue {
    return { pipeline: (this.pipelineInput?.value ?? this.options.pipeline ?? '').trim(), text: this.textarea.value };
  }

  private renderReference(): void {
    const pipeline = (this.pipelineInput?.value ?? this.options.pipeline ?? '').trim();
    const params = this.options.reference?.(pipeline);
    if (!params || !Object.keys(params).length) {
      this.referenceBox.replaceChildren();
      return;
    }
    this.referenceBox.replaceChildren(
      h('div', { class: 'jp-aidevops-muted' }, `Params of the latest ${pipeline} run (leave out what you keep):`),
      h(
        'div',
        { class: 'jp-aidevops-runs-params' },
        ...Object.entries(params).map(([k, v]) =>
          h('span', { class: 'jp-aidevops-runs-param', 'data-param': k }, `${k}=${formatValue(v)}`)
        )
      )
    );
  }

  private readonly referenceBox = h('div', { class: 'jp-aidevops-runs-form-reference' });
}

export class RunsPanel extends ReactPanel<RunsModel> {
  constructor(
    model: RunsModel,
    private readonly openNotebook: (runId: string, step: string, name: string) => void,
    private readonly openDiff: (diff: RunDiff) => void
  ) {
    super(model);
    this.addClass('jp-aidevops-runs-panel');
  }

  protected render(): React.ReactElement {
    return <RunsView state={this.model.view} actions={this.actions} />;
  }

  /** Ask for a pipeline and params, then start it; asks again (with the reason) until accepted or cancelled. */
  async runPipeline(): Promise<void> {
    const runs = this.model.view.runs;
    const pipelines = knownPipelines(runs);
    await this.askParams(
      'Run pipeline',
      'Run',
      { pipeline: pipelines[0] ?? '', text: '{}' },
      (value, error) => ({
        intro:
          'Start a pipeline run with these param overrides. Steps whose notebook, params and inputs are unchanged come from the cache.',
        text: value.text,
        error,
        pipelines,
        pipeline: value.pipeline,
        reference: p => runs.find(r => r.pipeline === p)?.params ?? null
      }),
      async value => {
        if (!value.pipeline) {
          return 'Name the pipeline to run: a spec in pipelines/, e.g. ci.';
        }
        const parsed = parseParams(value.text);
        return 'error' in parsed ? parsed.error : this.model.startRun(value.pipeline, parsed.params);
      }
    );
  }

  /** Confirm a re-run with the run's overrides editable; asks again (with the reason) until accepted or cancelled. */
  async rerun(run: RunSummary): Promise<void> {
    const failed = failedStep(run);
    await this.askParams(
      failed ? `Re-run ${run.pipeline} from the failed step ${failed}?` : `Re-run ${run.pipeline}?`,
      'Re-run',
      { pipeline: run.pipeline ?? '', text: JSON.stringify(run.overrides ?? {}, null, 1) },
      (value, error) => ({
        intro:
          `Runs pipeline ${run.pipeline} again with the params below (run ${run.run_id}'s overrides; edit them to fix the failure). ` +
          'Steps whose notebook, params and inputs did not change come from the cache' +
          (failed ? `, so the run resumes at ${failed}.` : '.'),
        text: value.text,
        error,
        pipeline: run.pipeline ?? '',
        reference: () => run.params ?? null
      }),
      async value => {
        const parsed = parseParams(value.text);
        return 'error' in parsed ? parsed.error : this.model.rerun(run.run_id, parsed.params);
      }
    );
  }

  /**
   * The params dialog (`form` builds its body from what was entered and what was wrong with it), shown
   * again until the user cancels or `submit` accepts the entry: it answers null once the job started, else
   * the sentence the next dialog shows.
   */
  private async askParams(
    title: string,
    okLabel: string,
    first: IParamsFormValue,
    form: (value: IParamsFormValue, error: string | null) => IParamsFormOptions,
    submit: (value: IParamsFormValue) => Promise<string | null>
  ): Promise<void> {
    let value = first;
    let error: string | null = null;
    for (;;) {
      const answer = await showDialog<IParamsFormValue>({
        title,
        body: new ParamsForm(form(value, error)),
        buttons: [Dialog.cancelButton(), Dialog.okButton({ label: okLabel })],
        focusNodeSelector: 'textarea'
      });
      if (!answer.button.accept || !answer.value) {
        return;
      }
      value = answer.value;
      error = await submit(value);
      if (error === null) {
        return;
      }
    }
  }

  /** Diff the two picked runs (older = base) in a main-area tab. */
  async diff(): Promise<void> {
    const pair = this.model.diffPair();
    if (!pair) {
      this.model.showError('Tick exactly two runs to diff them.');
      return;
    }
    try {
      this.openDiff(await this.model.api.diff(pair[0], pair[1]));
      this.model.showError(null);
    } catch (reason) {
      this.model.showError(errorMessage(reason));
    }
  }

  private readonly actions: IRunsActions = {
    refresh: () => void this.model.poll.refresh(),
    toggleSelected: runId => this.model.toggleSelected(runId),
    diff: () => void this.diff(),
    runPipeline: () => void this.runPipeline(),
    rerun: run => void this.rerun(run),
    openNotebook: (runId, step, name) => this.openNotebook(runId, step, name),
    dismissJob: () => this.model.dismissJob(),
    toggleStep: (runId, step) => this.model.toggleStep(runId, step),
    askRunFrom: () => this.model.askRunFrom(),
    cancelRunFrom: () => this.model.cancelRunFrom(),
    confirmRunFrom: () => void this.model.confirmRunFrom()
  };
}
