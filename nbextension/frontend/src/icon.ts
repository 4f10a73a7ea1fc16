/** The GPU chip icon of the sidebar tab, the menu entry and the status bar. */
import { LabIcon } from '@jupyterlab/ui-components';

// jp-icon3 lets the theme recolour the glyph (dark themes included).
const svgstr = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <path class="jp-icon3" fill="#616161" fill-rule="evenodd"
    d="M9 2h2v3H9zM13 2h2v3h-2zM9 19h2v3H9zM13 19h2v3h-2zM2 9h3v2H2zM2 13h3v2H2zM19 9h3v2h-3zM19 13h3v2h-3zM6 6h12v12H6zM9 9v6h6V9z"/>
</svg>`;

export const gpuIcon = new LabIcon({ name: 'cudaspawner:gpu', svgstr });
