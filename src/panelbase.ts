/**
 * The base of the three panel widgets: it tells the panel's model whether the panel is on screen, so that
 * the model's StandbyPoll polls only while it is.
 */

import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

/** A model with a StandbyPoll behind its `visible` (see ./polling). */
export interface IPolledModel {
  visible: boolean;
}

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
