/** The panels' icons (sidebar tabs, launcher items, main-area tabs). */

import { LabIcon } from '@jupyterlab/ui-components';

/** A 16 px panel icon: `shapes` (SVG elements on a 24 × 24 grid) in the theme's icon colour. */
export function panelIcon(name: string, shapes: string): LabIcon {
  return new LabIcon({
    name,
    svgstr:
      '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16"><g class="jp-icon3" fill="#616161">' +
      shapes +
      '</g></svg>'
  });
}

export const deployIcon = panelIcon(
  'aidevops:deploy',
  '<path d="M12 2c3.5 2 5 5.5 5 9.5l2.5 3v3.5l-3.5-1.5H8L4.5 18v-3.5l2.5-3C7 7.5 8.5 4 12 2zm0 6a2 2 0 100 4 2 2 0 000-4z"/>' +
    '<path d="M10 18h4l-.8 3h-2.4z"/>'
);

export const monitorIcon = panelIcon(
  'aidevops:monitor',
  '<path d="M3 4h18v13H3zm2 2v9h14V6zm1 7l3-4 3 2 4-5 1 1-5 6-3-2-2 3zM8 19h8v2H8z"/>'
);

export const runsIcon = panelIcon(
  'aidevops:runs',
  '<circle cx="5" cy="6" r="2.5"/><circle cx="12" cy="12" r="2.5"/><circle cx="19" cy="18" r="2.5"/>' +
    '<path d="M6.5 7.5l4 3 .9-1.2-4-3zM13.5 13.5l4 3 .9-1.2-4-3z"/><rect x="2" y="20" width="20" height="1.6"/>'
);
