/**
 * The plugin: wires one shared model to the right-sidebar panel, the status-bar item (where
 * a status bar exists: JupyterLab, not Notebook 7) and a "Show GPU panel" command in the
 * View menu and the command palette, which is how Notebook 7 users reach the panel (it
 * shows no tab for right-sidebar widgets).
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IMainMenu } from '@jupyterlab/mainmenu';
import { IStatusBar } from '@jupyterlab/statusbar';

import { createGpuApi } from './api';
import { gpuIcon } from './icon';
import { GpuModel } from './model';
import { GpuPanel } from './panel';
import { documentVisibility } from './poller';
import { GpuStatusItem } from './statusitem';

export namespace CommandIDs {
  export const open = 'cudaspawner:show-gpu-panel';
  export const verify = 'cudaspawner:run-gpu-verification';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: '@cudaspawner/gpu-panel:plugin',
  description: 'Live GPU status, processes and verification results in the right sidebar.',
  autoStart: true,
  // All optional: Notebook 7 has no status bar, and ILabShell is never required.
  optional: [IStatusBar, IMainMenu, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    statusBar: IStatusBar | null,
    mainMenu: IMainMenu | null,
    palette: ICommandPalette | null
  ) => {
    const model = new GpuModel(createGpuApi(), documentVisibility());
    const panel = new GpuPanel(model);
    app.shell.add(panel, 'right', { rank: 900 });

    app.commands.addCommand(CommandIDs.open, {
      label: 'Show GPU panel',
      caption: 'Show GPU status, processes and verification results',
      icon: gpuIcon,
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(CommandIDs.verify, {
      label: 'Run GPU verification again',
      execute: async () => {
        app.shell.activateById(panel.id);
        await model.runVerification();
      }
    });

    mainMenu?.viewMenu.addGroup([{ command: CommandIDs.open }], 100);
    palette?.addItem({ command: CommandIDs.open, category: 'GPU' });
    palette?.addItem({ command: CommandIDs.verify, category: 'GPU' });

    if (statusBar) {
      const item = new GpuStatusItem(model, () => {
        void app.commands.execute(CommandIDs.open);
      });
      statusBar.registerStatusItem('@cudaspawner/gpu-panel:status', {
        item,
        align: 'left',
        rank: 100
      });
    }
  }
};

export default plugin;
