/**
 * The panel widgets' base: it tells the panel's model whether the panel is on screen, so that the model's
 * StandbyPoll polls only while it is (PolledPanel); and the React host the Deploy and Monitor panels use
 * (ReactPanel), which re-renders its view on every model change. React reconciles instead of rebuilding,
 * so what the user does between polls (an open <details>, typed text, scroll, focus) stays.
 */

import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { PanelLayout, Widget } from '@lumino/widgets';
import * as React from 'react';

import { IPolledModel } from './polledmodel';

export class PolledPanel<M extends IPolledModel> extends Widget {
  constructor(readonly model: M) {
    super();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.model.visible = true;
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.model.visible = false;
  }

  // A panel attached while already shown (restored layout) gets no after-show message.
  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      this.model.visible = true;
    }
  }

  protected onBeforeDetach(msg: Message): void {
    this.model.visible = false;
    super.onBeforeDetach(msg);
  }
}

/**
 * A PolledPanel whose content is a React view of its model: `render()` is called on every `changed`
 * (UseSignal in a ReactWidget). The outer widget keeps the polling tied to visibility; the ReactWidget
 * inside gets the show/hide messages through the layout.
 */
export abstract class ReactPanel<M extends IPolledModel> extends PolledPanel<M> {
  constructor(model: M) {
    super(model);
    this.addClass('jp-aidevops-panel');
    const layout = new PanelLayout();
    this.layout = layout;
    this.view = ReactWidget.create(<UseSignal signal={model.changed}>{() => this.render()}</UseSignal>);
    this.view.addClass('jp-aidevops-view');
    layout.addWidget(this.view);
  }

  /** The view of the model's current state. */
  protected abstract render(): React.ReactElement;

  protected readonly view: ReactWidget;
}
